"""The relational store's contract, on SQLite and (in the real mode) PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, func, inspect, select
from sqlalchemy.exc import IntegrityError

from backends import REAL, create_database, drop_database
from photogram_common.db import Database, insert_ignoring_conflicts, sqlite_url
from photogram_common.migrations import upgrade_to_head

STORES = ["sqlite", *(["postgresql"] if REAL else [])]
MIGRATIONS = {
    "user_service": Path("user-service/user_service/migrations"),
    "post_service": Path("post-service/post_service/migrations"),
    "media_service": Path("media-service/media_service/migrations"),
    "notification_service": Path("notification-service/notification_service/migrations"),
}

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(20), unique=True),
)


@pytest.fixture(params=STORES)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database(sqlite_url(tmp_path / "store.db"))
        yield db
        await db.dispose()
        return
    name = f"t_{uuid.uuid4().hex[:12]}_contract"
    db = Database(await create_database(name))
    try:
        yield db
    finally:
        await db.dispose()
        await drop_database(name)


async def _count(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(things)) or 0)


async def test_a_failed_transaction_leaves_nothing(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    with pytest.raises(RuntimeError):  # noqa: PT012  (the failure is inside the transaction)
        async with database.transaction() as session:
            await session.execute(things.insert().values(id=1, name="a"))
            await session.execute(things.insert().values(id=2, name="b"))
            raise RuntimeError("the use case failed after two writes")
    assert await _count(database) == 0
    async with database.transaction() as session:
        await session.execute(things.insert().values(id=3, name="c"))
    assert await _count(database) == 1


async def test_insert_ignoring_conflicts_skips_duplicates(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with database.transaction() as session:
        first = await session.execute(
            insert_ignoring_conflicts(session, things, on=("id",)).values(id=1, name="a")
        )
        again = await session.execute(
            insert_ignoring_conflicts(session, things, on=("id",)).values(id=1, name="a")
        )
    assert (first.rowcount, again.rowcount) == (1, 0)  # type: ignore[attr-defined]
    assert await _count(database) == 1


async def test_a_conflict_on_another_key_raises_instead_of_vanishing(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with database.transaction() as session:
        await session.execute(things.insert().values(id=1, name="a"))
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.execute(
                insert_ignoring_conflicts(session, things, on=("id",)).values(id=2, name="a")
            )
    assert await _count(database) == 1


@pytest.mark.parametrize("service", sorted(MIGRATIONS))
async def test_each_service_migrates_to_the_same_schema(database: Database, service: str) -> None:
    await upgrade_to_head(database, MIGRATIONS[service])
    await upgrade_to_head(database, MIGRATIONS[service])  # a second run is a no-op

    def tables(conn) -> set[str]:  # type: ignore[no-untyped-def]
        return set(inspect(conn).get_table_names())

    async with database.engine.connect() as conn:
        found = await conn.run_sync(tables)
    expected = {
        "user_service": {
            "users",
            "follows",
            "outbox",
            "processed_events",
            "sessions",
            "refresh_tokens",
        },
        "post_service": {"posts", "post_media", "outbox", "idempotency_keys", "likes", "comments"},
        "media_service": {"media", "avatars"},
        "notification_service": {"notifications", "deleted_posts"},
    }[service]
    assert expected | {"alembic_version"} == found
