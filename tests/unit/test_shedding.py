"""The in-flight bound: past it a fast 503 problem with Retry-After; probes never shed."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from photogram_common.web import create_service_app


def held_app(release: asyncio.Event, entered: asyncio.Event) -> FastAPI:
    app = create_service_app(title="t", lifespan=None, max_in_flight=1)

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        entered.set()
        await release.wait()
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def test_a_request_past_the_bound_is_refused_at_once_and_the_held_one_completes() -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    transport = httpx.ASGITransport(app=held_app(release, entered))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        held = asyncio.create_task(client.get("/slow"))
        await entered.wait()
        refused = await client.get("/slow", headers={"x-request-id": "abc"})
        probe = await client.get("/healthz")
        release.set()
        done = await held
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["x-request-id"] == "abc"
    assert refused.json()["status"] == 503
    assert probe.status_code == 200
    assert done.status_code == 200 and done.json() == {"ok": True}


async def test_the_bound_frees_up_when_requests_finish() -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    release.set()
    transport = httpx.ASGITransport(app=held_app(release, entered))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        statuses = [(await client.get("/slow")).status_code for _ in range(5)]
    assert statuses == [200] * 5


def test_the_bound_is_on_by_default_in_the_distributed_mode_only() -> None:
    from photogram_common.settings import DEFAULT_MAX_IN_FLIGHT, PlatformSettings

    secrets = {"jwt_secret": "j" * 40, "internal_secret": "i" * 40}
    assert PlatformSettings(mode="embedded").in_flight_bound == 0
    assert PlatformSettings(mode="distributed", **secrets).in_flight_bound == DEFAULT_MAX_IN_FLIGHT
    assert PlatformSettings(mode="distributed", max_in_flight=0, **secrets).in_flight_bound == 0
    assert PlatformSettings(mode="embedded", max_in_flight=8).in_flight_bound == 8
