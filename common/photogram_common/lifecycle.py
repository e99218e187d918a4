"""The lifespan every service shares: migrate (embedded), start the bus, run background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from photogram_common.bus import Consumer, EventBus
from photogram_common.db import Database, sqlite_url
from photogram_common.migrations import upgrade_to_head
from photogram_common.settings import PlatformSettings
from photogram_common.workerids import WorkerIdLease

log = logging.getLogger(__name__)

# How long a stopping service waits for its cancelled background tasks. A task still
# running after it is left behind, named in the log, so that a stop never hangs on one
# (an outbox relay once stayed suspended in a SQLite call it was cancelled in; the rows
# it had not sent stay in the outbox for the next start: at least once).
STOP_GRACE_SECONDS = 10.0
# A task still running after the grace is cancelled again, this many times, RECANCEL_WAIT
# seconds apart: a cancel interrupts only the await it lands in, and a task whose cleanup
# awaits something that never completes (a call to a database thread already gone) ends
# on a later cancel. A task left running would also hang the event loop's own close, which
# cancels every task once and waits for them all.
RECANCELS = 20
RECANCEL_WAIT = 0.1


def database_for(platform: PlatformSettings, *, url: str | None, sqlite_name: str) -> Database:
    """The configured database, or the service's own SQLite file in the data directory."""
    if url:
        return Database(url)
    platform.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(sqlite_url(platform.data_dir / sqlite_name))


def service_lifespan(
    *,
    platform: PlatformSettings,
    bus: EventBus | None,
    owns_bus: bool,
    database: Database | None = None,
    migrations: Path | None = None,
    tasks: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    consumers: Sequence[Consumer] = (),
    on_start: Sequence[Callable[[], Awaitable[None]]] = (),
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
    lease: WorkerIdLease | None = None,
    stop_grace_seconds: float = STOP_GRACE_SECONDS,
) -> Callable[[Any], Any]:
    """Build a lifespan: the embedded mode migrates at start; the real one has a migrate job."""

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if database is not None and migrations is not None and platform.embedded:
            await upgrade_to_head(database, migrations)
        background = list(tasks)
        if lease is not None:
            await lease.acquire()  # before any ID is made
            background.append(lease.keep)
        if owns_bus and bus is not None:
            await bus.start()
        for start in on_start:
            await start()
        running: list[asyncio.Task[None]] = [asyncio.create_task(t()) for t in background]
        running += [asyncio.create_task(c.run()) for c in consumers]
        try:
            yield
        finally:
            for consumer in consumers:
                await consumer.stop()
            for task in running:
                task.cancel()
            if running:
                _, stuck = await asyncio.wait(running, timeout=stop_grace_seconds)
                for _ in range(RECANCELS if stuck else 0):
                    for task in stuck:
                        task.cancel()
                    _, stuck = await asyncio.wait(stuck, timeout=RECANCEL_WAIT)
                    if not stuck:
                        break
                for task in stuck:
                    log.warning(
                        "background task still running %.0f s after it was cancelled "
                        "(and %d cancels more); stopping without it",
                        stop_grace_seconds,
                        RECANCELS,
                        extra={"task": task.get_name(), "coroutine": repr(task.get_coro())},
                    )
            for task in running:
                if task.done():
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        task.result()
            for stop in on_stop:
                await stop()
            if lease is not None:
                await lease.release()
            if owns_bus and bus is not None:
                await bus.close()
            if database is not None:
                await database.dispose()

    return lifespan
