"""The relational store: SQLAlchemy async on SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.dml import Insert

from photogram_common.metrics import instrument_engine

# SQLite only auto-increments an INTEGER PRIMARY KEY, so big keys are INTEGER there.
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")


def sqlite_url(path: Path) -> str:
    """Return the async URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


class Database:
    """An engine and its sessions; the caller owns each transaction through `transaction()`."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = create_async_engine(url, connect_args={"timeout": 30})
            _serialise_sqlite_writers(self.engine.sync_engine)
        else:
            self.engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        instrument_engine(self.engine.sync_engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Yield a session in a transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def purge_in_batches(
        self, purge: Callable[[AsyncSession, int], Awaitable[int]], *, batch: int = 5000
    ) -> int:
        """Run `purge(session, batch)` (it deletes at most `batch` rows and says how many),
        one short transaction each, until a round deletes fewer; return the total."""
        total = 0
        while True:
            async with self.transaction() as session:
                done = await purge(session, batch)
            total += done
            if done < batch:
                return total

    @asynccontextmanager
    async def single_statement(self) -> AsyncIterator[AsyncSession]:
        """Yield a session for one statement that is atomic by itself (a read): on an
        autocommit connection, so no BEGIN and COMMIT round trips surround it. The fan-out
        pages its followers this way (docs/benchmarks.md (a))."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            async with AsyncSession(bind=conn) as session:
                yield session

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _serialise_sqlite_writers(sync_engine: Any) -> None:
    # SQLite's deferred BEGIN lets two writers both read, then deadlock on the upgrade to a
    # write lock without waiting for the busy timeout. BEGIN IMMEDIATE takes the write lock
    # first, so concurrent transactions queue instead of failing; WAL keeps reads concurrent.
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_ignoring_conflicts(session: AsyncSession, table: Any, *, on: Sequence[str]) -> Insert:
    """An INSERT that skips a row whose `on` columns (a unique key) exist already.

    The conflict target is explicit: a row that violates another unique constraint (an ID
    that collided) raises instead of vanishing without a trace.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(on))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(on))
