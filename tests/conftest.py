"""Fixtures shared by every tier: isolated backends, the composed system, API clients."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import photogram_common.redis as redis_module
from backends import MODE, REAL, isolated_backends
from helpers import Api
from photogram_common.settings import PlatformSettings, resolve_secrets

# The console tests start the embedded mode themselves, whatever the run's backends: the
# embedded run has them, the real one leaves them out (not collected, rather than skipped).
collect_ignore = ["e2e/test_console.py"] if REAL else []


def pytest_report_header() -> str:
    return f"photogram backends: {MODE}"


@pytest.fixture
async def backend_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, str]]:
    """Set PHOTOGRAM_* for a fresh, isolated set of backends; a new fakeredis per test."""
    monkeypatch.setattr(redis_module, "_SERVER", None)
    for key in ("PHOTOGRAM_RATE_LIMIT_PER_MINUTE",):
        monkeypatch.setenv(key, "0")
    # argon2id at its lowest cost: the suites sign up thousands of users, and at OWASP's
    # (~45 ms of a core each) that was minutes of each run (tests/unit covers the default).
    monkeypatch.setenv("PHOTOGRAM_USERS_PASSWORD_MEMORY_KIB", "1024")
    monkeypatch.setenv("PHOTOGRAM_USERS_PASSWORD_TIME_COST", "1")
    async with isolated_backends(tmp_path) as backends:
        for key in backends.unset:
            monkeypatch.delenv(key)
        for key, value in backends.env.items():
            monkeypatch.setenv(key, value)
        yield backends.env


def platform_settings(**overrides: Any) -> PlatformSettings:
    return resolve_secrets(PlatformSettings(**overrides))


@pytest.fixture
def system_overrides() -> dict[str, Any]:
    """PlatformSettings fields a test module may override (e.g. the celebrity threshold)."""
    return {}


@pytest.fixture
async def system(
    backend_env: dict[str, str], system_overrides: dict[str, Any]
) -> AsyncIterator[Any]:
    """The whole system composed in this process, on the backends of this test run."""
    from photogram_runner.embedded import compose, running

    platform = platform_settings(**system_overrides)
    composed = compose(platform)
    watchdog: asyncio.Task[None] | None = None
    try:
        async with running(composed), composed.gateway.router.lifespan_context(composed.gateway):
            try:
                yield composed
            finally:
                watchdog = asyncio.create_task(_name_what_does_not_stop(STOP_WITHIN_SECONDS))
    finally:
        if watchdog is not None:
            watchdog.cancel()
        _forget_endpoint_classifications()


# A composed system stops in well under a second; the run's timeout (300 s) would only say
# that the teardown hung, not in what.
STOP_WITHIN_SECONDS = 60.0


async def _name_what_does_not_stop(within: float) -> None:
    """If the system has not stopped `within` seconds, print every task's stack (the test
    still fails on the run's timeout: this only says where the stop is stuck)."""
    await asyncio.sleep(within)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    _print_tasks(f"the system has not stopped in {within:.0f} s; its tasks:", others)


def _print_tasks(header: str, tasks: Any) -> None:
    """Print each task's name and where it is suspended, to stderr."""
    out = sys.stderr
    print(header, file=out)
    for task in tasks:
        print(f"--- {task.get_name()}", file=out)
        for line in _awaiting(task.get_coro()):
            print(f"    {line}", file=out)
    out.flush()


def _awaiting(awaitable: Any) -> list[str]:
    """Where a suspended coroutine is, down its chain of awaits (a task's own stack shows
    only the outermost frame)."""
    lines = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            lines.append(repr(awaitable))
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return lines


# The event loop's close (pytest-asyncio's runner, like asyncio.run) cancels every task
# left and waits for them all, with no bound: one task that never ends after its cancel
# (twice in CI, an outbox relay suspended in an aiosqlite call whose answer never came,
# docs/decisions.md "A stop waits for its cancelled background tasks 10 s at most") hung a
# teardown for the run's 300 s. In the test process that wait is bounded: what is still
# running after LEFT_TASKS_GRACE seconds is printed, await chain and all, and left.
LEFT_TASKS_GRACE = 10.0


def _cancel_all_tasks_within_grace(loop: asyncio.AbstractEventLoop) -> None:
    left = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not left:
        return
    for task in left:
        task.cancel()
    _, stuck = loop.run_until_complete(asyncio.wait(left, timeout=LEFT_TASKS_GRACE))
    if stuck:
        _print_tasks(
            f"{len(stuck)} task(s) still running {LEFT_TASKS_GRACE:.0f} s after the "
            "loop's close cancelled them; left:",
            stuck,
        )
    for task in left:
        if task.done() and not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during the loop's close",
                    "exception": task.exception(),
                    "task": task,
                }
            )


asyncio.runners._cancel_all_tasks = _cancel_all_tasks_within_grace  # type: ignore[attr-defined]


def _forget_endpoint_classifications() -> None:
    """Let a stopped system be collected. FastAPI classifies each endpoint and dependency
    callable in module-level LRU caches of 4,096 entries; each system's are closures over
    its clients and services, so without this the caches keep the last ~40 whole systems
    alive (gigabytes by the end of a run, and long garbage-collector passes mid-test)."""
    from fastapi.dependencies import models

    for name in dir(models):
        cached = getattr(models, name)
        if name.endswith("_cached") and hasattr(cached, "cache_clear"):
            cached.cache_clear()


@pytest.fixture
async def api(system: Any) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=system.gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client)
