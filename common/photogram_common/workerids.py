"""Worker ids no two live processes share: a PostgreSQL advisory lock held per process.

An ID's worker bits make it unique without coordination only if no two live processes
generate with the same worker id. With `PHOTOGRAM_WORKER_ID` unset, a service process
takes a session-level advisory lock on a free worker id in its own database, on a
connection it keeps for its lifetime: the lock goes when the process (or its connection)
goes, with no expiry to renew. A watchdog checks the connection and, when it was lost
(PostgreSQL restarted), takes a lock again before more IDs are made with that id.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from photogram_common.db import Database
from photogram_common.ids import MAX_WORKER_ID, IdGenerator

log = logging.getLogger(__name__)

# The first key of the two-key advisory lock: "worker ids", apart from other locks.
NAMESPACE = 0x5047_0001
_TRY = text("SELECT pg_try_advisory_lock(:namespace, :worker)")


class WorkerIdLease:
    """Leases a free worker id for `ids` in `database` while the process runs."""

    def __init__(
        self,
        database: Database,
        ids: IdGenerator,
        *,
        check_seconds: float = 1.0,
        worker_ids: Sequence[int] = range(MAX_WORKER_ID + 1),
    ) -> None:
        # A connection of its own, outside the service's pool, held for the lease's life.
        self._engine: AsyncEngine = create_async_engine(database.url, poolclass=NullPool)
        self._ids = ids
        self._check_seconds = check_seconds
        self._worker_ids = list(worker_ids)
        self._connection: AsyncConnection | None = None
        self._held: int | None = None

    async def acquire(self) -> None:
        """Hold a lock on a free worker id (the one held before, if still free)."""
        connection = await self._engine.connect()
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        candidates = random.sample(self._worker_ids, len(self._worker_ids))
        if self._held is not None:
            candidates.insert(0, self._held)
        for worker in candidates:
            taken = await connection.scalar(_TRY, {"namespace": NAMESPACE, "worker": worker})
            if taken:
                self._connection, self._held = connection, worker
                self._ids.assign(worker)
                log.info("worker id leased", extra={"worker_id": worker})
                return
        await connection.close()
        raise RuntimeError(f"all {len(candidates)} worker ids are held by live processes")

    async def keep(self) -> None:
        """Background task: take a lock again if the connection holding it was lost.

        Until then no ID is made (creating anything needs the database anyway).
        """
        while True:
            await asyncio.sleep(self._check_seconds)
            try:
                if self._connection is None:
                    await self.acquire()
                    continue
                await self._connection.scalar(text("SELECT 1"))
            except Exception:  # the lock went with the connection: lease again
                log.warning("worker id lease lost; leasing again")
                self._ids.unassign()
                await self._drop()

    async def release(self) -> None:
        await self._drop()
        await self._engine.dispose()

    async def _drop(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                await connection.close()
            except Exception:
                log.debug("closing a lost lease connection failed", exc_info=True)
