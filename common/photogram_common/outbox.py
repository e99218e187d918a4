"""Transactional outbox: events commit with the change; a relay publishes them after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from datetime import timedelta

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from photogram_common.bus import EventBus, OutgoingMessage
from photogram_common.db import BigIntKey, Database
from photogram_common.events import Envelope, Event
from photogram_common.timeutil import utcnow

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table, declared in the owning service's own metadata."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigIntKey, primary_key=True, autoincrement=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
    )


class Outbox:
    """Writes events into the caller's transaction and wakes the relay after commit."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.written = asyncio.Event()

    async def add(self, session: AsyncSession, event: Event) -> None:
        await session.execute(
            self.table.insert().values(
                topic=event.topic,
                key=event.key(),
                payload=Envelope.wrap(event).encode(),
                created_at=utcnow(),
            )
        )
        session.info["outbox_written"] = True

    def notify(self) -> None:
        """Tell the relay there is work (call after the transaction committed)."""
        self.written.set()


class OutboxRelay:
    """Publishes unsent outbox rows in order, then marks them sent (at least once)."""

    def __init__(
        self,
        *,
        database: Database,
        outbox: Outbox,
        bus: EventBus,
        batch_size: int = 200,
        poll_interval: float = 0.5,
        keep_sent: timedelta = timedelta(days=1),
        purge_every_seconds: float = 600,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._keep_sent = keep_sent
        self._purge_every = purge_every_seconds
        self._next_purge = 0.0
        # One relay per database publishes at a time, so per-key order survives replicas.
        self._lock_id = zlib.crc32(outbox.table.name.encode() + database.url.encode()) & 0x7FFFFFFF

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; return how many were sent."""
        table = self._outbox.table
        async with self._database.transaction() as session:
            if not self._database.is_sqlite:
                got = await session.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": self._lock_id}
                )
                if not got:
                    return 0
            rows = (
                await session.execute(
                    select(table.c.id, table.c.topic, table.c.key, table.c.payload)
                    .where(table.c.sent_at.is_(None))
                    .order_by(table.c.id)
                    .limit(self._batch_size)
                )
            ).all()
            if not rows:
                return 0
            await self._bus.publish(
                [OutgoingMessage(topic=r.topic, key=r.key, value=r.payload) for r in rows]
            )
            await session.execute(
                update(table).where(table.c.id.in_([r.id for r in rows])).values(sent_at=utcnow())
            )
        return len(rows)

    async def purge_sent(self) -> int:
        """Delete rows sent longer ago than the retention (kept a while for replays)."""
        table = self._outbox.table
        async with self._database.transaction() as session:
            result = await session.execute(
                delete(table).where(table.c.sent_at < utcnow() - self._keep_sent)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def run(self) -> None:
        """Publish until cancelled, woken by new rows or the poll interval."""
        while True:
            if time.monotonic() >= self._next_purge:
                self._next_purge = time.monotonic() + self._purge_every
                try:
                    await self.purge_sent()
                except Exception:
                    log.exception("outbox purge failed")
            # Cleared before reading, so a row committed meanwhile wakes the next wait.
            self._outbox.written.clear()
            try:
                sent = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                sent = 0
                await asyncio.sleep(self._poll_interval)
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.written.wait(), self._poll_interval)
