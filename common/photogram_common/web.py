"""The parts every service's FastAPI app shares: request IDs, problems, health."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photogram_common import tracing
from photogram_common.deadlines import DeadlineMiddleware
from photogram_common.logs import request_id_var, service_var
from photogram_common.metrics import RouteMetrics, metrics_endpoint, route_of
from photogram_common.problems import Problem, install_problem_handlers, problem_response
from photogram_common.settings import LoadBounds
from photogram_common.shedding import InFlightLimitMiddleware

REQUEST_ID_HEADER = "x-request-id"
ReadinessCheck = Callable[[], Awaitable[Any]]
log = logging.getLogger("photogram.request")


def _clean_request_id(raw: str | None) -> str:
    # A client's own ID is echoed back only when it is short and printable.
    if raw and len(raw) <= 128 and raw.isprintable() and raw.isascii():
        return raw
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Give every request an ID (the client's when it sent one), log it and echo it back;
    the lines logged while serving it name `service`. Unless `metrics` is off, each request
    is counted and timed by its route template (photogram_common.metrics). While tracing is
    on, each request is a server span named by its route template, the child of the
    caller's `traceparent` (photogram_common.tracing)."""

    def __init__(self, app: ASGIApp, service: str | None = None, metrics: bool = True) -> None:
        self.app = app
        self.service = service
        self.metrics = RouteMetrics(service or "photogram") if metrics else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(REQUEST_ID_HEADER.encode())
        request_id = _clean_request_id(raw.decode("latin-1") if raw else None)
        token = request_id_var.set(request_id)
        service_token = service_var.set(self.service) if self.service else None
        started = time.perf_counter()
        status = 500
        responded = failed = False
        traced = (
            tracing.start_server_span(
                headers, scope.get("method") or "", scope.get("path") or "", self.service or ""
            )
            if tracing.ENABLED
            else None
        )

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [
                    (k, v) for k, v in message["headers"] if k.lower() != REQUEST_ID_HEADER.encode()
                ] + [(REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            failed = True
            # Starlette answers an unhandled error outside this middleware, without the ID:
            # answer here (its handler still logs the error, then the server does).
            if not responded:
                generic = Problem(500, "Something went wrong on our side.")
                await problem_response(generic)(scope, receive, send_with_id)
            raise
        finally:
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.record(scope, status, seconds, failed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                },
            )
            if traced is not None:  # after the request's line, which carries its trace ID
                tracing.finish_server_span(
                    *traced,
                    method=scope.get("method") or "",
                    route=route_of(scope),
                    status=status,
                    failed=failed,
                )
            request_id_var.reset(token)
            if service_token is not None:
                service_var.reset(service_token)


# Each check's answer is awaited this long: the probes give /readyz 2 s, and a dependency
# that hangs (a paused broker or Redis) must not make an informational check a failed probe.
CHECK_TIMEOUT_SECONDS = 1.0


async def check_readiness(
    checks: Mapping[str, ReadinessCheck], *, per_check_seconds: float = CHECK_TIMEOUT_SECONDS
) -> tuple[bool, dict[str, str]]:
    """Run the named checks at once, each for at most `per_check_seconds`; report 'ok' or
    the error class for each."""

    async def one(check: ReadinessCheck) -> str:
        try:
            async with asyncio.timeout(per_check_seconds):
                await check()
        except Exception as exc:  # a readiness probe reports failures, it never raises
            return f"unavailable: {type(exc).__name__}"
        return "ok"

    states = await asyncio.gather(*(one(check) for check in checks.values()))
    report = dict(zip(checks, states, strict=True))
    return all(v == "ok" for v in report.values()), report


class HealthRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class ReadinessRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ready", "checks": {"user-service": "ok", "redis": "ok"}}]
        }
    )

    status: str
    checks: dict[str, str]


def add_health_routes(
    app: FastAPI,
    checks: Callable[[], Mapping[str, ReadinessCheck]],
    *,
    include_in_schema: bool = False,
    informational: frozenset[str] = frozenset(),
) -> None:
    """Add /healthz (the process is alive) and /readyz (its dependencies answer).

    Checks named in `informational` are reported but do not make the app unready: with one
    of them failing, /readyz answers 200 with status "degraded".
    """

    @app.get("/healthz", include_in_schema=include_in_schema, summary="Liveness")
    async def healthz() -> HealthRead:
        """200 while the process is alive and serving; no dependency is asked."""
        return HealthRead(status="ok")

    @app.get(
        "/readyz",
        include_in_schema=include_in_schema,
        summary="Readiness",
        response_model=ReadinessRead,
        responses={503: {"model": ReadinessRead, "description": "A dependency is unreachable"}},
    )
    async def readyz() -> JSONResponse:
        """Each dependency's state: 200 "ready" (or "degraded", when only a dependency that
        does not gate readiness fails), 503 "not ready" when one that does fails."""
        healthy, report = await check_readiness(checks())
        ready = all(state == "ok" for name, state in report.items() if name not in informational)
        status = "not ready" if not ready else "ready" if healthy else "degraded"
        return JSONResponse({"status": status, "checks": report}, status_code=200 if ready else 503)


def create_service_app(
    *,
    title: str,
    lifespan: Any,
    bounds: LoadBounds | None = None,
    caller_deadlines: bool = True,
    service: str | None = None,
    **kwargs: Any,
) -> FastAPI:
    """Make a FastAPI app with problem JSON errors, request IDs, the caller's deadline
    (`caller_deadlines`: services behind the gateway; photogram_common.deadlines) and, when
    `bounds` sets any, load shedding (a fast 503 past a bound; photogram_common.shedding).
    Its log lines and metrics name `service` (default: the title); /metrics serves the
    process's metrics (photogram_common.metrics)."""
    # FastAPI's own OpenTelemetry hooks ask the global providers on every request whether
    # they are configured (~5 % of a hop's CPU, docs/benchmarks.md (f)), so off: the
    # request-ID middleware makes the request's span when tracing is on (tracing.py).
    kwargs.setdefault("telemetry", {"tracing": False, "metrics": False, "logs": False})
    app = FastAPI(title=title, lifespan=lifespan, **kwargs)
    install_problem_handlers(app)
    # Served on the app's own port, outside the OpenAPI document; the ingress does not route
    # it (docs/operations.md, "Metrics").
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    if caller_deadlines:
        # Inside the request ID, so a 504 carries it and is logged with it.
        app.add_middleware(DeadlineMiddleware)
    app.add_middleware(RequestIdMiddleware, service=service or title)
    if bounds is not None and bounds.any:
        # Outermost, so a refused request costs no logging, routing or validation.
        app.add_middleware(
            InFlightLimitMiddleware,
            limit=bounds.in_flight,
            max_lag_seconds=bounds.loop_lag_ms / 1000,
            wait_seconds=bounds.wait_ms / 1000,
            newest_first=bounds.newest_first,
            overload_wait_seconds=bounds.overload_wait_ms / 1000,
            overload_after_seconds=bounds.overload_after_ms / 1000,
            paths=bounds.paths,
            service=service or title,
        )
    return app
