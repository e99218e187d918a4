"""Every request's deadline at the edge: the time its calls to the services share.

A client cannot set it (the budget header the services read is ignored here): an ordinary
request has `PHOTOGRAM_GATEWAY_REQUEST_DEADLINE_SECONDS` (10), the upload, which includes
receiving up to ten files, `PHOTOGRAM_GATEWAY_UPLOAD_DEADLINE_SECONDS` (120). The gateway
does not cancel its own work at the deadline: its calls end by then, and a clean-up after a
failed call runs with a budget of its own (photogram_common.deadlines).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.bodylimit import UPLOAD
from photogram_common import deadlines


class RequestDeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float, upload_seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.upload_seconds = upload_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = (scope["method"], scope["path"]) == UPLOAD
        with deadlines.within(self.upload_seconds if upload else self.seconds, replace=True):
            await self.app(scope, receive, send)
