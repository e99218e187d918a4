"""Deadlines between services: what a call tells its peer, and what a peer does with it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from photogram_common import deadlines
from photogram_common.clients import ServiceClient, ServiceUnavailable
from photogram_common.deadlines import DEADLINE_HEADER, DeadlineMiddleware

SECRET = "s" * 48


def recording_client(*, timeout: float = 5.0, network: bool = False) -> tuple[ServiceClient, list]:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    client = ServiceClient(
        name="peer",
        base_url="http://peer",
        internal_secret=SECRET,
        timeout=timeout,
        transport=httpx.MockTransport(answer),
        network=network,
    )
    return client, sent


def budget_ms(request: httpx.Request) -> int:
    return int(request.headers[DEADLINE_HEADER])


async def test_a_call_tells_its_peer_the_time_left_minus_a_margin() -> None:
    client, sent = recording_client()
    await client.call("GET", "/x")
    assert DEADLINE_HEADER not in sent[0].headers  # no deadline, no budget
    with deadlines.within(2.0):
        await client.call("GET", "/x")
    assert 1000 < budget_ms(sent[1]) < 2000


async def test_over_the_network_the_per_hop_timeout_bounds_the_budget_too() -> None:
    client, sent = recording_client(timeout=1.0, network=True)
    with deadlines.within(10.0):
        await client.request("GET", "/x")
        await client.request("POST", "/upload", deadline_only=True)
    assert 0 < budget_ms(sent[0]) < 1000
    assert 9000 < budget_ms(sent[1]) < 10_000


async def test_a_deadline_never_grows_unless_replaced() -> None:
    with deadlines.within(1.0):
        with deadlines.within(60.0):
            left = deadlines.remaining()
            assert left is not None
            assert left <= 1.0
        with deadlines.within(60.0, replace=True):
            left = deadlines.remaining()
            assert left is not None
            assert left > 59
    assert deadlines.remaining() is None


async def test_no_call_is_made_once_the_deadline_passed() -> None:
    client, sent = recording_client()
    with deadlines.within(0.0), pytest.raises(ServiceUnavailable):
        await client.call("GET", "/x")
    assert sent == []


def service(seen: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        seen["left"] = deadlines.remaining()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        return {}

    @app.get("/quick")
    async def quick() -> dict[str, Any]:
        return {"left": deadlines.remaining()}

    app.add_middleware(DeadlineMiddleware)
    return app


async def test_a_service_answers_504_and_stops_working_when_its_budget_runs_out() -> None:
    seen: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=service(seen))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        response = await asyncio.wait_for(
            client.get("/slow", headers={DEADLINE_HEADER: "50"}), timeout=30
        )
        assert response.status_code == 504
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 504
        assert seen["cancelled"] is True
        assert 0 < seen["left"] <= 0.05
        # Without the header, or with one that is not a budget, there is no deadline.
        for headers in ({}, {DEADLINE_HEADER: "soon"}, {DEADLINE_HEADER: "-5"}):
            assert (await client.get("/quick", headers=headers)).json() == {"left": None}
        left = (await client.get("/quick", headers={DEADLINE_HEADER: "3000"})).json()["left"]
        assert 0 < left <= 3
