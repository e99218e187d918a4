"""Transactional outbox: events commit with the change; a relay publishes them after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from datetime import timedelta
from typing import Any

from photogram_contracts.events import Envelope, Event
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from photogram_common import tracing
from photogram_common.bus import EventBus, OutgoingMessage
from photogram_common.db import BigIntKey, Database
from photogram_common.metrics import (
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISHED,
    OUTBOX_UNSENT,
    count,
    current_service,
)
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
        # While set and in the future, a relay is sending the row (the lease on its batch).
        Column("claimed_until", DateTime(timezone=True), nullable=True),
        # The W3C `traceparent` of the span the row was written in (NULL while tracing is
        # off): the relay's publish and the consumers' handling join that trace.
        Column("trace_context", String(64), nullable=True),
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
                trace_context=tracing.current_traceparent() if tracing.ENABLED else None,
            )
        )
        session.info["outbox_written"] = True

    def notify(self) -> None:
        """Tell the relay there is work (call after the transaction committed)."""
        self.written.set()


class OutboxRelay:
    """Publishes unsent outbox rows in order, then marks them sent (at least once).

    A batch is claimed in one short transaction (a lease: `claimed_until`), sent with no
    transaction or connection held, then marked sent in another short one. While a batch's
    lease runs no other relay claims anything, so per-key order survives replicas; the send
    gives up well before the lease ends, and a relay that died mid-send leaves a lease that
    simply runs out (its rows are sent again: at least once).
    """

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
        lease: timedelta = timedelta(seconds=30),
        send_timeout: float = 10.0,
        measure_every_seconds: float = 1.0,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._keep_sent = keep_sent
        self._purge_every = purge_every_seconds
        self._next_purge = 0.0
        self._lease = lease
        self._send_timeout = send_timeout
        self._measure_every = measure_every_seconds
        self._next_measure = 0.0
        # One relay per database claims at a time, so per-key order survives replicas.
        self._lock_id = zlib.crc32(outbox.table.name.encode() + database.url.encode()) & 0x7FFFFFFF

    async def claim(self) -> list[Row[Any, Any, Any, Any, Any]]:
        """Take the next batch of unsent rows under a lease; none while another batch's runs."""
        table = self._outbox.table
        now = utcnow()
        async with self._database.transaction() as session:
            if not self._database.is_sqlite:
                got = await session.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": self._lock_id}
                )
                if not got:
                    return []
            in_flight = await session.scalar(
                select(table.c.id)
                .where(table.c.sent_at.is_(None), table.c.claimed_until > now)
                .limit(1)
            )
            if in_flight is not None:
                return []
            rows = list(
                (
                    await session.execute(
                        select(
                            table.c.id,
                            table.c.topic,
                            table.c.key,
                            table.c.payload,
                            table.c.trace_context,
                        )
                        .where(table.c.sent_at.is_(None))
                        .order_by(table.c.id)
                        .limit(self._batch_size)
                    )
                ).all()
            )
            if rows:
                await session.execute(
                    update(table)
                    .where(table.c.id.in_([r.id for r in rows]))
                    .values(claimed_until=now + self._lease)
                )
        return rows

    async def _finish(self, ids: list[int], *, sent: bool) -> None:
        table = self._outbox.table
        values: dict[str, Any] = {"claimed_until": None}
        if sent:
            values["sent_at"] = utcnow()
        async with self._database.transaction() as session:
            await session.execute(
                update(table).where(table.c.id.in_(ids), table.c.sent_at.is_(None)).values(values)
            )

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; return how many were sent."""
        rows = await self.claim()
        if not rows:
            return 0
        ids = [r.id for r in rows]
        spans, messages = self._messages(rows)
        try:
            async with asyncio.timeout(self._send_timeout):
                await self._bus.publish(messages)
        except (Exception, asyncio.CancelledError) as exc:
            for span in spans:
                tracing.end_span(span, exc)
            # Let the next attempt (ours or a replica's) claim the batch without waiting out
            # the lease; if this fails too, the lease runs out by itself.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(ids, sent=False))
            raise
        for span in spans:
            tracing.end_span(span)
        await self._finish(ids, sent=True)
        count(OUTBOX_PUBLISHED, len(rows))
        return len(rows)

    @staticmethod
    def _messages(
        rows: list[Row[Any, Any, Any, Any, Any]],
    ) -> tuple[list[Any], list[OutgoingMessage]]:
        """The batch's bus records, each carrying the trace context its row was written in.

        While tracing is on, each row that has one is an "outbox publish" span, the child of
        that context, and its record's `traceparent` header names that span; while it is off
        the stored context is passed on as it is (no span, nothing parsed).
        """
        if not tracing.ENABLED:
            return [], [
                OutgoingMessage(
                    topic=r.topic,
                    key=r.key,
                    value=r.payload,
                    headers=((tracing.TRACEPARENT, r.trace_context.encode()),)
                    if r.trace_context
                    else (),
                )
                for r in rows
            ]
        service = current_service()
        spans: list[Any] = []
        messages: list[OutgoingMessage] = []
        for r in rows:
            headers: tracing.Headers = ()
            if r.trace_context:
                span, headers = tracing.start_producer_span(
                    r.trace_context, topic=r.topic, key=r.key, row_id=r.id, service=service
                )
                spans.append(span)
            messages.append(
                OutgoingMessage(topic=r.topic, key=r.key, value=r.payload, headers=tuple(headers))
            )
        return spans, messages

    async def measure(self) -> tuple[int, float]:
        """Count the unsent rows and the age of the oldest; set the gauges to them."""
        table = self._outbox.table
        async with self._database.single_statement() as session:
            row = (
                await session.execute(
                    select(func.count(), func.min(table.c.created_at)).where(
                        table.c.sent_at.is_(None)
                    )
                )
            ).one()
        unsent, oldest = int(row[0]), row[1]
        age = 0.0
        if oldest is not None:
            if oldest.tzinfo is None:  # SQLite hands back naive UTC
                oldest = oldest.replace(tzinfo=utcnow().tzinfo)
            age = max(0.0, (utcnow() - oldest).total_seconds())
        OUTBOX_UNSENT.labels(service=current_service()).set(unsent)
        OUTBOX_OLDEST_AGE.labels(service=current_service()).set(age)
        return unsent, age

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
        failing_since: float | None = None
        last_logged = 0.0
        while True:
            if time.monotonic() >= self._next_purge:
                self._next_purge = time.monotonic() + self._purge_every
                try:
                    await self.purge_sent()
                except Exception:
                    log.exception("outbox purge failed")
            if time.monotonic() >= self._next_measure:
                # At most once a second, however busy: a count of the unsent rows.
                self._next_measure = time.monotonic() + self._measure_every
                try:
                    await self.measure()
                except Exception:
                    log.debug("outbox measure failed", exc_info=True)
            # Cleared before reading, so a row committed meanwhile wakes the next wait.
            self._outbox.written.clear()
            try:
                sent = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The first failure with its traceback; while it lasts, a line a minute.
                now = time.monotonic()
                if failing_since is None or now - last_logged >= 60:
                    log.warning(
                        "outbox relay failed; retrying",
                        exc_info=exc if failing_since is None else None,
                        extra={"error": repr(exc)},
                    )
                    last_logged = now
                    failing_since = failing_since or now
                sent = 0
                await asyncio.sleep(self._poll_interval)
            else:
                if failing_since is not None:
                    log.info("outbox relay recovered")
                    failing_since = None
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.written.wait(), self._poll_interval)
