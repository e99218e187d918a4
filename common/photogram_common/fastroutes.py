"""Hot GET routes answered before FastAPI's router, for the requests they can answer alone.

The home feed is nearly all of the traffic, and FastAPI's routing, dependency solving and
parameter validation were a third of each hop's CPU (docs/benchmarks.md (f)). A fast route
takes the common, well-formed request: its handler gets the ASGI scope and returns a
response, or `None` for anything it does not take (an unusual query string, a missing or
bad credential), which then goes to the FastAPI route of the same path, the one the OpenAPI
document describes and that answers every error case as it always has. A `Problem` raised
by a handler is rendered as the FastAPI app would render it.

This layer sits inside every other middleware (request IDs and their log line, deadlines,
the in-flight bound, the gateway's header and body limits), so those apply alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from photogram_common.metrics import ROUTE_KEY
from photogram_common.problems import Problem, problem_response

FastHandler = Callable[[Scope], Awaitable[Response | None]]


class FastRoutes:
    def __init__(self, app: ASGIApp, *, routes: Mapping[str, FastHandler]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.routes.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if handler is not None:
            response: Response | None
            try:
                response = await handler(scope)
            except Problem as problem:
                response = problem_response(problem)
            if response is not None:
                # Counted under its path, which is the template (a fast route has no
                # parameters in its path); a request it leaves is routed and named there.
                scope[ROUTE_KEY] = scope["path"]
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (lower-case `name`), as Starlette's `Headers.get`."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def page_query(scope: Scope, *, max_limit: int = 100) -> tuple[int, str | None] | None:
    """`limit` and `cursor` of a page request when they are all it has and both are plain
    (`limit` a decimal 1..max_limit without a sign or leading zero, `cursor` not empty,
    neither repeated); `None` for anything else."""
    raw: Any = scope.get("query_string", b"")
    if not raw:
        return 20, None
    limit, cursor = 20, None
    seen: set[str] = set()
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key in seen:
            return None
        seen.add(key)
        if key == "limit":
            if not (value.isascii() and value.isdigit() and value[0] != "0" and len(value) <= 3):
                return None
            limit = int(value)
            if limit > max_limit:
                return None
        elif key == "cursor" and value:
            cursor = value
        else:
            return None
    return limit, cursor
