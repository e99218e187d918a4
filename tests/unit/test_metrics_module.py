"""The metrics module: route labels are templates, every sample names its service, and load
shedding counts what it refuses."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from photogram_common import metrics
from photogram_common.fastroutes import FastRoutes
from photogram_common.logs import logging_as
from photogram_common.shedding import InFlightLimitMiddleware
from photogram_common.web import create_service_app


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def app_with_routes(service: str) -> FastAPI:
    app = create_service_app(title=service, lifespan=None, caller_deadlines=False)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    return app


async def test_requests_are_labelled_by_template_and_service() -> None:
    app = app_with_routes("unit-things")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get("/things/123")).status_code == 200
        assert (await client.get("/things/456")).status_code == 200
        assert (await client.get("/nowhere/789")).status_code == 404
        text = (await client.get("/metrics")).text
    labels = {"service": "unit-things", "method": "GET"}
    assert (
        value("photogram_http_requests_total", route="/things/{thing_id}", status="200", **labels)
        == 2
    )
    assert value("photogram_http_requests_total", route="unmatched", status="404", **labels) == 1
    assert (
        value("photogram_http_request_duration_seconds_count", route="/things/{thing_id}", **labels)
        == 2
    )
    assert "/things/123" not in text
    assert "/nowhere" not in text
    assert 'route="/things/{thing_id}"' in text


async def test_a_fast_route_is_counted_under_its_path() -> None:
    async def fast(_: Any) -> PlainTextResponse:
        return PlainTextResponse("fast")

    app = create_service_app(
        title="unit-fast",
        lifespan=None,
        caller_deadlines=False,
        middleware=[Middleware(FastRoutes, routes={"/fast": fast})],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get("/fast")).text == "fast"
    assert (
        value(
            "photogram_http_requests_total",
            service="unit-fast",
            route="/fast",
            method="GET",
            status="200",
        )
        == 1
    )


async def test_shed_requests_are_counted_by_bound() -> None:
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await PlainTextResponse("ok")(scope, receive, send)

    limiter = InFlightLimitMiddleware(inner, limit=1, service="unit-shed")
    assert limiter.admission is not None
    limiter.admission.in_flight = 1  # at the bound
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=limiter), base_url="http://t"
    ) as client:
        assert (await client.get("/x")).status_code == 503
        # The scrape is never shed.
        assert (await client.get("/metrics")).status_code == 200
    assert reached == ["/metrics"]
    assert value("photogram_shed_requests_total", service="unit-shed", reason="in_flight") == 1


def test_the_service_label_follows_the_running_service() -> None:
    before = value("photogram_fanout_inserts_total", service="unit-worker")
    with logging_as("unit-worker"):
        metrics.count(metrics.FANOUT_INSERTS, 3)
    assert value("photogram_fanout_inserts_total", service="unit-worker") == before + 3


def test_sql_verbs_are_a_closed_set() -> None:
    assert metrics._verb("  select 1") == "SELECT"
    assert metrics._verb("INSERT INTO t VALUES (1)") == "INSERT"
    assert metrics._verb("CREATE TABLE secret_123 (x)") == "OTHER"
    assert metrics._verb("") == "OTHER"
