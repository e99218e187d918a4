"""Size limits of the edge: request bodies and headers, refused before the route sees them."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photogram_common.problems import Problem, problem_response

# The one route that streams a large body: media-service holds each file to its own cap.
UPLOAD = ("POST", "/api/upload")
# Methods whose routes never read a body: only a declared length is checked.
_BODILESS = ("GET", "HEAD", "OPTIONS", "DELETE")


class BodyLimitMiddleware:
    """Buffers at most `limit` bytes of a body; one byte more is a 413.

    Every route is held to it, whatever the `Content-Type` says, except the upload, which
    the route streams with a ceiling of its own (api/posts.py).
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) == UPLOAD:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        if scope["method"] in _BODILESS:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem(
            413, f"The request body is over {self.limit} bytes.", title="Content too large"
        )
        await problem_response(problem)(scope, receive, send)


def head_size(scope: Scope) -> int:
    """The bytes of the request line's target and of every header, as sent."""
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    return target + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


class HeaderLimitMiddleware:
    """Refuses a request whose target and headers together pass `limit` bytes with a 431.

    The gateway's server refuses such a request while reading it (serving.py); this holds
    under any other server too, once the server has read the headers.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and head_size(scope) > self.limit:
            problem = Problem(
                431,
                f"The request's headers are over {self.limit} bytes.",
                title="Request header fields too large",
            )
            await problem_response(problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)
