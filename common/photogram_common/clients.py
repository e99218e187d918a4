"""HTTP between services: one httpx client per peer, in-process (ASGI) or over the network."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import httpx
import orjson
from photogram_contracts.identity import Identity
from pydantic import BaseModel

from photogram_common import deadlines, tracing
from photogram_common.identity import INTERNAL_HEADER, issue_internal_token
from photogram_common.logs import request_id_var
from photogram_common.metrics import PEER_DURATION, PEER_REQUESTS, current_service
from photogram_common.problems import Problem

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class ServiceUnavailable(Problem):
    """A peer is down, slow or failing; the client sees no name of it (it is an internal host)."""

    def __init__(self, service: str) -> None:
        super().__init__(
            503,
            "A service is unavailable; try again shortly.",
            title="Service unavailable",
            headers={"Retry-After": "1"},
        )
        self.service = service


def make_transport(asgi_app: Any | None) -> httpx.AsyncBaseTransport:
    """ASGI transport for a peer in this process; the aiohttp transport over the network.

    The aiohttp transport is about three times faster than httpx's default one under
    concurrency (docs/decisions.md), and keeps the httpx API for callers and tests.
    """
    if asgi_app is not None:
        # A peer's crash must reach the caller as a 500 response, as it would over the
        # network, not as the peer's exception raised inside the caller.
        return httpx.ASGITransport(app=asgi_app, raise_app_exceptions=False)
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS // 2
        )
    )


# Connections per peer and process: above the in-flight bound (PHOTOGRAM_MAX_IN_FLIGHT), so
# an admitted request never waits for a connection (docs/operations.md).
MAX_CONNECTIONS = 200


@dataclass(frozen=True)
class RawResponse:
    """A peer's reply as bytes, for relaying without parsing."""

    status: int
    headers: Mapping[str, str]
    content: bytes


class ServiceClient:
    """Calls one peer service, carrying the request ID and an internal identity token (and,
    while tracing is on, each call is a client span whose `traceparent` the peer is sent)."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        internal_secret: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport,
        network: bool = False,
    ) -> None:
        self.name = name
        self._secret = internal_secret
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._network = network
        self._session: aiohttp.ClientSession | None = None
        self.http = httpx.AsyncClient(
            base_url=base_url, transport=transport, timeout=httpx.Timeout(timeout)
        )

    def headers(self, identity: Identity | None) -> dict[str, str]:
        headers = {}
        request_id = request_id_var.get()
        if request_id:
            headers["x-request-id"] = request_id
        who = identity or Identity(user_id=0, username=f"service:{self.name}")
        headers[INTERNAL_HEADER] = issue_internal_token(secret=self._secret, identity=who)
        if tracing.ENABLED:
            tracing.inject(headers)
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        identity: Identity | None = None,
        deadline_only: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; a peer that is down or slow becomes a quick 503 Problem.

        Under a deadline (photogram_common.deadlines) the peer is waited for no longer than
        the time left, nor, over the network, than the per-hop timeout (unless
        `deadline_only`: a streamed upload), and is told so in its budget header.
        """
        if tracing.ENABLED:
            with tracing.client_span(self.name, method, path, current_service()) as span:
                response = await self._timed(method, path, identity, deadline_only, kwargs)
                span.set_attribute("http.response.status_code", response.status_code)
                return response
        return await self._timed(method, path, identity, deadline_only, kwargs)

    async def _timed(
        self,
        method: str,
        path: str,
        identity: Identity | None,
        deadline_only: bool,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        started = time.perf_counter()
        outcome = "unreachable"
        try:
            response = await self._request(method, path, identity, deadline_only, kwargs)
            outcome = _outcome(response.status_code)
            return response
        finally:
            self._record(started, outcome)

    def _record(self, started: float, outcome: str) -> None:
        """Count and time one call to the peer (photogram_common.metrics)."""
        service = current_service()
        PEER_REQUESTS.labels(service, self.name, outcome).inc()
        PEER_DURATION.labels(service, self.name).observe(time.perf_counter() - started)

    async def _request(
        self,
        method: str,
        path: str,
        identity: Identity | None,
        deadline_only: bool,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        headers = {**self.headers(identity), **kwargs.pop("headers", {})}
        wait = self._wait(deadline_only)
        if wait is None:
            return await self._send(method, path, headers, kwargs)
        name, value = deadlines.budget_header(wait)
        headers[name] = value
        limit = asyncio.timeout(wait)
        try:
            async with limit:
                return await self._send(method, path, headers, kwargs)
        except TimeoutError as exc:
            if not limit.expired():
                raise
            log.warning("peer out of time", extra={"peer": self.name, "seconds": round(wait, 3)})
            raise ServiceUnavailable(self.name) from exc

    def _wait(self, deadline_only: bool = False) -> float | None:
        """How long to wait for the peer under the current deadline (None: no deadline)."""
        left = deadlines.remaining()
        if left is None:
            return None
        # In-process there is no per-hop timeout (the peer is this process): only the deadline.
        wait = left if deadline_only or not self._network else min(self._timeout, left)
        if wait <= 0:
            log.warning("deadline passed before a peer call", extra={"peer": self.name})
            raise ServiceUnavailable(self.name)
        return wait

    async def _send(
        self, method: str, path: str, headers: dict[str, str], kwargs: dict[str, Any]
    ) -> httpx.Response:
        try:
            return await self.http.request(method, path, headers=headers, **kwargs)
        except (httpx.TransportError, OSError) as exc:
            log.warning("peer unreachable", extra={"peer": self.name, "error": type(exc).__name__})
            raise ServiceUnavailable(self.name) from exc

    async def call(
        self, method: str, path: str, *, identity: Identity | None = None, **kwargs: Any
    ) -> Any:
        """Send a request and return its JSON; a peer's problem becomes ours, 5xx a 503."""
        response = await self.request(method, path, identity=identity, **kwargs)
        raise_for_problem(self.name, response)
        return response.json() if response.content else None

    async def fetch(
        self,
        path: str,
        *,
        identity: Identity | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> RawResponse:
        """GET a path and return the reply's bytes; the hot path of relayed pages."""
        return await self.send_raw("GET", path, identity=identity, params=params)

    async def parsed(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        identity: Identity | None = None,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> M:
        """Send a request and parse its reply's bytes as `model` (a peer's problem becomes
        ours, 5xx a 503): pydantic reads the JSON itself, without `json.loads` first."""
        raw = await self.send_raw(method, path, identity=identity, params=params, json=json)
        raise_for_problem(self.name, raw)
        return model.model_validate_json(raw.content)

    async def send_raw(
        self,
        method: str,
        path: str,
        *,
        identity: Identity | None = None,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> RawResponse:
        """Send a request and return the reply's status, headers and bytes.

        Over the network this goes straight to aiohttp: the httpx layer on top of it costs
        the caller about as much CPU as the rest of its hop (docs/decisions.md). In-process
        peers keep the httpx ASGI transport.
        """
        if not self._network:
            options: dict[str, Any] = {"params": params}
            if json is not None:
                options["json"] = json
            response = await self.request(method, path, identity=identity, **options)
            return RawResponse(response.status_code, response.headers, response.content)
        if tracing.ENABLED:
            with tracing.client_span(self.name, method, path, current_service()) as span:
                raw = await self._send_raw(method, path, identity, params, json)
                span.set_attribute("http.response.status_code", raw.status)
                return raw
        return await self._send_raw(method, path, identity, params, json)

    async def _send_raw(
        self,
        method: str,
        path: str,
        identity: Identity | None,
        params: Mapping[str, str | int] | None,
        json: Any,
    ) -> RawResponse:
        headers = self.headers(identity)
        wait = self._wait()
        options: dict[str, Any] = {}
        if wait is not None:
            name, value = deadlines.budget_header(wait)
            headers[name] = value
            options["timeout"] = aiohttp.ClientTimeout(total=wait)
        if json is not None:
            headers["content-type"] = "application/json"
            options["data"] = orjson.dumps(json)
        started = time.perf_counter()
        outcome = "unreachable"
        try:
            async with self._aiohttp().request(
                method, self._base_url + path, params=params, headers=headers, **options
            ) as reply:
                raw = RawResponse(reply.status, reply.headers, await reply.read())
                outcome = _outcome(raw.status)
                return raw
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("peer unreachable", extra={"peer": self.name, "error": type(exc).__name__})
            raise ServiceUnavailable(self.name) from exc
        finally:
            self._record(started, outcome)

    def _aiohttp(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def ping(self) -> None:
        response = await self.http.get("/readyz", timeout=2.0)
        response.raise_for_status()

    async def close(self) -> None:
        await self.http.aclose()
        if self._session is not None:
            await self._session.close()


def _outcome(status: int) -> str:
    return f"{status // 100}xx"


def raise_for_problem(service: str, response: httpx.Response | RawResponse) -> None:
    """Re-raise a peer's 4xx problem as is; hide a 5xx behind a generic 503."""
    if isinstance(response, RawResponse):
        if response.status < 400:
            return
        response = httpx.Response(
            response.status, headers=dict(response.headers), content=response.content
        )
    if response.status_code < 400:
        return
    if response.status_code >= 500:
        log.warning("peer failed", extra={"peer": service, "status": response.status_code})
        raise ServiceUnavailable(service)
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    extra = {"errors": body["errors"]} if isinstance(body, dict) and "errors" in body else None
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() in ("retry-after", "www-authenticate")
    }
    raise Problem(
        response.status_code,
        detail if isinstance(detail, str) else "The request failed.",
        title=body.get("title") if isinstance(body, dict) else None,
        headers=headers,
        extra=extra,
    )
