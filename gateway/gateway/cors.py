"""Cross-origin requests from the origins PHOTOGRAM_CORS_ORIGINS names (none by default).

The web client is served by the gateway itself, so it needs none of this; a client served
from another origin (a development server, another site) does. A request from an origin
not named is served exactly as if the gateway knew nothing of CORS: no CORS headers, and a
preflight is answered by the routes (a 405 problem), so the browser refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from photogram_common.web import RequestIdMiddleware

# What a browser may send beyond the safelisted headers, and the methods the API uses.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# What a script may read from an answer beyond the safelisted response headers.
EXPOSED_HEADERS = (
    "Location",
    "Retry-After",
    "X-Request-ID",
    "WWW-Authenticate",
    "Idempotent-Replayed",
    "Allow",
)
# How long a browser may keep a preflight's answer (Chromium holds it at most 2 hours).
PREFLIGHT_MAX_AGE_SECONDS = 600


class AllowedOriginsCors(CORSMiddleware):
    """Starlette's CORS middleware for a fixed list of origins (or "*"), no cookies; any
    other origin passes through untouched."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            # The API's credential is a bearer token, never a cookie.
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )
        # A preflight is answered here, outside the app: it gets a request ID and a log
        # line all the same.
        self._preflight = RequestIdMiddleware(self._answer_preflight, service="gateway")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is None or not self.is_allowed_origin(origin):
                await self.app(scope, receive, send)
                return
            if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                await self._preflight(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _answer_preflight(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.preflight_response(request_headers=Headers(scope=scope))
        await response(scope, receive, send)
