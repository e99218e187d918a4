"""Load shedding: a bounded number of requests in flight per process, a fast 503 past it.

Past the knee a queue only adds latency to every request it holds. Refusing the excess at
once keeps the served requests at the knee's latency and tells clients when to come back.
Health probes are never shed: an overloaded process is alive and still ready.
"""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Receive, Scope, Send

PROBES = frozenset({"/healthz", "/readyz"})
_BODY = (
    b'{"type":"about:blank","title":"Service unavailable","status":503,'
    b'"detail":"The service is at capacity; try again shortly."}'
)


class InFlightLimitMiddleware:
    """Answer 503 with Retry-After when `limit` requests are already in flight."""

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self.shed = 0
        self._retry_after = str(retry_after_seconds).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.shed += 1
            await self._refuse(scope, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        request_id = next(
            (v for k, v in scope.get("headers") or [] if k == b"x-request-id" and len(v) <= 128),
            uuid.uuid4().hex.encode(),
        )
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(_BODY)).encode()),
                    (b"retry-after", self._retry_after),
                    (b"x-request-id", request_id),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _BODY})
