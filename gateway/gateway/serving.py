"""The gateway's HTTP server: uvicorn, holding request heads to a size and ignoring proxies.

uvicorn's httptools protocol buffers a request's line and headers whatever their size, and
uvicorn believes `X-Forwarded-For` from any loopback peer by default. The gateway is the
public edge: it caps the head while reading it and judges forwarded headers itself
(addresses.py, PHOTOGRAM_GATEWAY_TRUSTED_PROXIES).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import GatewaySettings
from photogram_common.problems import PROBLEM_JSON
from photogram_common.runtime import GracefulServer, server_for


class HeadLimitedProtocol(HttpToolsProtocol):
    """httptools' protocol, answering 431 and closing once a request's head passes a size.

    The bytes received while a request's headers are incomplete are counted after each
    read is parsed, so at most the limit and one read are ever buffered. After the 431 the
    connection lingers a moment, reading and dropping what the client still sends: closing
    with unread bytes would reset the connection and lose the answer on the way.
    """

    max_head_bytes = 32 * 1024
    linger_seconds = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False
        self._head_bytes = 0
        self._refused = False
        self._linger: asyncio.TimerHandle | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if not self._head_open or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._refuse()

    def _refuse(self) -> None:
        self._head_open = False
        self._refused = True
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Request header fields too large",
                "status": 431,
                "detail": f"The request's headers are over {self.max_head_bytes} bytes.",
            }
        ).encode()
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            f"content-type: {PROBLEM_JSON}\r\n"
            f"content-length: {len(body)}\r\n"
            f"x-request-id: {uuid.uuid4().hex}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(self.linger_seconds, self.transport.close)


def head_limited(max_head_bytes: int) -> type[HeadLimitedProtocol]:
    """The protocol class for one limit (uvicorn takes a class, not an instance)."""
    return type("HeadLimitedProtocol", (HeadLimitedProtocol,), {"max_head_bytes": max_head_bytes})


def gateway_server(
    app: Any,
    settings: GatewaySettings,
    *,
    port: int,
    server_class: type[GracefulServer] = GracefulServer,
) -> GracefulServer:
    """The gateway's server: the shared one, with the head cap and no proxy-header trust."""
    server = server_for(app, host=settings.host, port=port, server_class=server_class)
    server.config.http = head_limited(settings.max_header_bytes)
    # uvicorn would rewrite the client's address from X-Forwarded-For sent by any loopback
    # peer before the gateway sees the request; the gateway decides whom to believe.
    server.config.proxy_headers = False
    return server
