"""The in-flight bound: past it a fast 503 problem with Retry-After; probes never shed."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
from fastapi import FastAPI

from photogram_common.settings import LoadBounds, PlatformSettings
from photogram_common.shedding import Admission
from photogram_common.web import create_service_app


def held_app(
    release: asyncio.Event,
    entered: asyncio.Event,
    *,
    bounds: LoadBounds | None = None,
    paths: tuple[str, ...] = ("/slow",),
) -> FastAPI:
    """Each of `paths` holds its request until `release` (`entered` set as it begins)."""
    app = create_service_app(title="t", lifespan=None, bounds=bounds or LoadBounds(in_flight=1))

    async def held() -> dict[str, bool]:
        entered.set()
        await release.wait()
        return {"ok": True}

    for path in paths:
        app.add_api_route(path, held, methods=["GET"])

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
    assert done.status_code == 200
    assert done.json() == {"ok": True}


async def test_the_bound_frees_up_when_requests_finish() -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    release.set()
    transport = httpx.ASGITransport(app=held_app(release, entered))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        statuses = [(await client.get("/slow")).status_code for _ in range(5)]
    assert statuses == [200] * 5


def test_the_bound_is_on_by_default_in_the_distributed_mode_only() -> None:
    from photogram_common.settings import (
        DEFAULT_MAX_IN_FLIGHT,
        DEFAULT_MAX_LOOP_LAG_MS,
        PlatformSettings,
    )

    secrets = {"jwt_secret": "j" * 40, "internal_secret": "i" * 40}
    assert PlatformSettings(mode="embedded").in_flight_bound == 0
    assert PlatformSettings(mode="distributed", **secrets).in_flight_bound == DEFAULT_MAX_IN_FLIGHT
    assert PlatformSettings(mode="distributed", max_in_flight=0, **secrets).in_flight_bound == 0
    assert PlatformSettings(mode="embedded", max_in_flight=8).in_flight_bound == 8
    assert PlatformSettings(mode="embedded").loop_lag_bound_ms == 0
    assert (
        PlatformSettings(mode="distributed", **secrets).loop_lag_bound_ms == DEFAULT_MAX_LOOP_LAG_MS
    )
    assert PlatformSettings(mode="distributed", max_loop_lag_ms=0, **secrets).loop_lag_bound_ms == 0


def lagging_app() -> FastAPI:
    app = create_service_app(title="t", lifespan=None, bounds=LoadBounds(loop_lag_ms=20))

    @app.get("/block")
    async def block() -> dict[str, bool]:
        time.sleep(0.1)  # noqa: ASYNC251 (the point: the loop is held, as a saturated core holds it)
        return {"ok": True}

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def test_a_request_that_meets_a_late_loop_is_refused_and_service_resumes_after() -> None:
    transport = httpx.ASGITransport(app=lagging_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/ok")).status_code == 200  # starts the lag timer
        assert (await client.get("/block")).status_code == 200  # held the loop 100 ms
        await asyncio.sleep(0.001)  # the timer runs, late
        single_pause = await client.get("/ok")
        assert (await client.get("/block")).status_code == 200  # and again: a queue
        await asyncio.sleep(0.001)
        refused = await client.get("/ok")
        probe = await client.get("/healthz")
        statuses = []
        for _ in range(100):  # the loop idles: its timer runs on time again
            await asyncio.sleep(0.02)
            statuses.append((await client.get("/ok")).status_code)
            if statuses[-1] == 200:
                break
    assert single_pause.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["status"] == 503
    assert probe.status_code == 200
    assert statuses[-1] == 200


async def test_a_request_past_the_bound_waits_for_a_slot_freed_within_the_wait() -> None:
    admission = Admission(1, wait=5.0)
    assert await admission.enter()
    waiting = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    assert not waiting.done()
    admission.leave()
    assert await waiting  # handed the slot
    assert admission.in_flight == 1
    admission.leave()
    assert admission.in_flight == 0


async def test_a_request_past_the_bound_is_refused_when_no_slot_frees_in_time() -> None:
    admission = Admission(1, wait=0.01)
    assert await admission.enter()
    assert not await admission.enter()
    admission.leave()
    assert admission.in_flight == 0
    assert await admission.enter()  # the refused one left nothing behind


@pytest.mark.parametrize(("newest_first", "order"), [(False, [0, 1, 2]), (True, [2, 1, 0])])
async def test_waiting_requests_get_the_freed_slots_in_the_line_s_order(
    newest_first: bool, order: list[int]
) -> None:
    admission = Admission(3, wait=5.0, newest_first=newest_first)
    for _ in range(3):
        assert await admission.enter()
    served: list[int] = []

    async def one(n: int) -> None:
        assert await admission.enter()
        served.append(n)

    waiters = [asyncio.create_task(one(n)) for n in range(3)]
    await asyncio.sleep(0)
    for _ in range(3):
        admission.leave()
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    assert served == order


async def test_newest_first_refuses_the_oldest_waiter_to_make_room_for_a_newcomer() -> None:
    admission = Admission(1, wait=5.0, newest_first=True)
    assert await admission.enter()
    oldest = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    newcomer = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the oldest's task runs on its refusal
    assert oldest.done()  # refused at once, not at the wait's end
    assert not oldest.result()
    assert not newcomer.done()
    admission.leave()
    assert await newcomer
    assert admission.in_flight == 1
    admission.leave()
    assert admission.in_flight == 0


async def test_a_standing_line_shortens_the_wait_and_an_empty_one_restores_it() -> None:
    admission = Admission(2, wait=30.0, overload_wait=0.01, overload_after=0.05)
    loop = asyncio.get_running_loop()
    assert await admission.enter()
    assert await admission.enter()
    assert admission.current_wait(loop.time()) == 30.0  # no line: a burst gets the full wait
    first = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    assert admission.current_wait(loop.time()) == 30.0  # a line just formed
    await asyncio.sleep(0.06)  # the line has stood past overload_after
    assert admission.current_wait(loop.time()) == 0.01
    # A newcomer now waits the short wait, not 30 s, and is refused.
    assert not await asyncio.wait_for(admission.enter(), timeout=5.0)
    admission.leave()
    assert await first  # the one of the full wait is still served
    admission.leave()
    admission.leave()
    assert admission.in_flight == 0
    assert await admission.enter()
    assert await admission.enter()
    again = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    assert admission.current_wait(loop.time()) == 30.0  # the line was empty: a new one
    admission.leave()
    assert await again
    admission.leave()
    admission.leave()


def test_the_distributed_mode_shortens_a_standing_line_s_wait_by_default() -> None:
    bounds = PlatformSettings(
        mode="distributed", jwt_secret="j" * 40, internal_secret="i" * 40
    ).load_bounds
    assert (bounds.wait_ms, bounds.overload_wait_ms, bounds.overload_after_ms) == (20, 5, 100)
    off = PlatformSettings(
        mode="distributed",
        jwt_secret="j" * 40,
        internal_secret="i" * 40,
        admission_overload_after_ms=0,
    ).load_bounds
    assert off.overload_after_ms == 0


async def test_at_most_as_many_wait_as_the_bound_the_rest_are_refused_at_once() -> None:
    admission = Admission(1, wait=5.0)
    assert await admission.enter()
    waiting = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    assert not await admission.enter()  # the wait is full: no wait
    admission.leave()
    assert await waiting


async def test_a_waiter_cancelled_as_it_is_handed_a_slot_passes_the_slot_on() -> None:
    admission = Admission(1, wait=5.0)
    assert await admission.enter()
    first = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    admission.leave()  # the slot goes to `first`...
    first.cancel()  # ...whose client leaves before it runs
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert admission.in_flight == 0  # the slot was given back, not leaked
    assert await admission.enter()


async def test_a_waiter_cancelled_before_its_turn_leaves_the_line() -> None:
    admission = Admission(1, wait=5.0)
    assert await admission.enter()
    gone = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    gone.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await gone
    second = asyncio.create_task(admission.enter())  # the line has room again
    await asyncio.sleep(0)
    admission.leave()
    assert await second


async def test_a_path_with_its_own_bound_is_not_held_up_by_the_others_nor_they_by_it() -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    bounds = LoadBounds(in_flight=1, paths={"/feed": 1})
    app = held_app(release, entered, bounds=bounds, paths=("/feed", "/upload"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        upload = asyncio.create_task(client.get("/upload"))
        await entered.wait()
        entered.clear()
        feed = asyncio.create_task(client.get("/feed"))  # the general bound is full
        await entered.wait()
        second_feed = await client.get("/feed")  # its own bound is full
        second_upload = await client.get("/upload")
        release.set()
        done = await asyncio.gather(upload, feed)
    assert second_feed.status_code == 503
    assert second_upload.status_code == 503
    assert [r.status_code for r in done] == [200, 200]
