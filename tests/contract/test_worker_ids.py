"""Worker ids leased in PostgreSQL: two live processes never share one.

With SQLite (the embedded mode) one process owns each service's file, so its fixed worker
id is unique by construction; the lease exists only on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from backends import REAL, create_database, drop_database
from helpers import eventually
from photogram_common.db import Database, sqlite_url
from photogram_common.ids import IdGenerator
from photogram_common.runtime import make_id_generator
from photogram_common.settings import PlatformSettings
from photogram_common.workerids import NAMESPACE, WorkerIdLease


@pytest.fixture
async def postgres() -> AsyncIterator[Database]:
    if not REAL:
        pytest.fail("needs PHOTOGRAM_TEST_BACKENDS=real")  # collected only with real backends
    name = f"t_{uuid.uuid4().hex[:12]}_leases"
    db = Database(await create_database(name))
    try:
        yield db
    finally:
        await db.dispose()
        await drop_database(name)


def test_sqlite_keeps_the_fixed_worker_id_and_needs_no_lease(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path / "x.db"))
    ids, lease = make_id_generator(PlatformSettings(), default_worker=2, database=database)
    assert (ids.worker_id, lease) == (2, None)


def test_an_unassigned_generator_makes_no_id() -> None:
    with pytest.raises(RuntimeError):
        IdGenerator(None).next_id()


if REAL:

    async def test_live_leases_never_share_a_worker_id(postgres: Database) -> None:
        leases, seen = [], set()
        try:
            for _ in range(20):
                ids = IdGenerator(None)
                lease = WorkerIdLease(postgres, ids)
                await lease.acquire()
                leases.append(lease)
                assert ids.worker_id is not None
                assert ids.worker_id not in seen
                seen.add(ids.worker_id)
                ids.next_id()
        finally:
            for lease in leases:
                await lease.release()

    async def test_a_released_id_is_free_again_and_none_free_is_an_error(
        postgres: Database,
    ) -> None:
        space = [7, 8, 9]
        holders = [WorkerIdLease(postgres, IdGenerator(None), worker_ids=space) for _ in space]
        extra_ids = IdGenerator(None)
        extra = WorkerIdLease(postgres, extra_ids, worker_ids=space)
        try:
            for holder in holders:
                await holder.acquire()
            with pytest.raises(RuntimeError):
                await extra.acquire()
            assert extra_ids.worker_id is None
            await holders[1].release()
            await extra.acquire()
            assert extra_ids.worker_id == holders[1]._held
        finally:
            for holder in (*holders, extra):
                await holder.release()

    async def test_a_lost_lease_stops_ids_until_leased_again(postgres: Database) -> None:
        ids = IdGenerator(None)
        lease = WorkerIdLease(postgres, ids, check_seconds=0.05)
        await lease.acquire()
        held, first = ids.worker_id, lease._connection
        keeper = asyncio.create_task(lease.keep())
        try:
            await _terminate_lease_connection(postgres)

            async def leased_again() -> bool:
                current = lease._connection
                return current is not None and current is not first and ids.worker_id is not None

            await eventually(leased_again)
            assert ids.worker_id == held  # free again, so the same one
        finally:
            keeper.cancel()
            await lease.release()


async def _terminate_lease_connection(postgres: Database) -> None:
    """Kill the backend that holds advisory locks in our namespace (the lease's)."""
    async with postgres.engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND classid = :namespace"
            ),
            {"namespace": NAMESPACE},
        )
        await conn.commit()
