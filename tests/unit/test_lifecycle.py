"""The shared lifespan's stop: background tasks are cancelled and awaited, within a grace."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from photogram_common.lifecycle import service_lifespan
from photogram_common.settings import PlatformSettings


async def test_a_background_task_that_ignores_its_cancel_does_not_hang_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped: list[str] = []
    never = asyncio.Event()

    async def stubborn() -> None:
        while not never.is_set():  # swallows every cancel and stays suspended
            with contextlib.suppress(asyncio.CancelledError):
                await never.wait()

    async def polite() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.append("polite")

    async def on_stop() -> None:
        stopped.append("on_stop")

    lifespan = service_lifespan(
        platform=PlatformSettings(mode="embedded"),
        bus=None,
        owns_bus=False,
        tasks=[stubborn, polite],
        on_stop=[on_stop],
        stop_grace_seconds=0.05,
    )
    with caplog.at_level(logging.WARNING, logger="photogram_common.lifecycle"):
        async with asyncio.timeout(10):
            async with lifespan(None):
                await asyncio.sleep(0)
    assert stopped == ["polite", "on_stop"]  # the polite one ended, the stop went on
    assert any("still running" in r.getMessage() for r in caplog.records)
    left = [t for t in asyncio.all_tasks() if t.get_coro().__name__ == "stubborn"]
    assert len(left) == 1
    assert not left[0].done()
    never.set()
    await asyncio.wait(left, timeout=1)


async def test_background_tasks_that_end_on_their_cancel_are_awaited_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended: list[str] = []

    async def worker() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append("worker")

    async def failing() -> None:
        raise RuntimeError("a task that failed before the stop")

    lifespan = service_lifespan(
        platform=PlatformSettings(mode="embedded"),
        bus=None,
        owns_bus=False,
        tasks=[worker, failing],
    )
    with caplog.at_level(logging.WARNING, logger="photogram_common.lifecycle"):
        async with lifespan(None):
            await asyncio.sleep(0.01)
    assert ended == ["worker"]
    assert not [r for r in caplog.records if "still running" in r.getMessage()]


async def test_a_task_whose_cleanup_hangs_ends_on_a_later_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    never = asyncio.Event()
    steps: list[str] = []

    async def cleanup_hangs() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            steps.append("first cancel")
            await never.wait()  # a cleanup call that never completes: only a cancel ends it
            raise

    lifespan = service_lifespan(
        platform=PlatformSettings(mode="embedded"),
        bus=None,
        owns_bus=False,
        tasks=[cleanup_hangs],
        stop_grace_seconds=0.05,
    )
    with caplog.at_level(logging.WARNING, logger="photogram_common.lifecycle"):
        async with asyncio.timeout(5):
            async with lifespan(None):
                await asyncio.sleep(0)
    assert steps == ["first cancel"]
    assert not [t for t in asyncio.all_tasks() if t.get_coro().__name__ == "cleanup_hangs"]
    assert not [r for r in caplog.records if "still running" in r.getMessage()]
