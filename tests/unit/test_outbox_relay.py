"""The outbox relay's rules on a fake bus and a scratch SQLite file, at unit speed: rows
are published in order and marked sent only once the bus took them; a failed send leaves
them unsent and claimable again at once; a batch under lease is claimed by no other relay;
the gauges count what is unsent (photogram_common.outbox; on PostgreSQL and Kafka, the
e2e suites)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from photogram_contracts.events import Envelope, FollowCreated
from sqlalchemy import MetaData, select

from photogram_common.bus import Message, OutgoingMessage
from photogram_common.db import Database, sqlite_url
from photogram_common.outbox import Outbox, OutboxRelay, outbox_table


class RecordingBus:
    """Takes what is published; fails while `down`."""

    def __init__(self) -> None:
        self.published: list[OutgoingMessage] = []
        self.down = False

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.published.extend(messages)

    async def read_topic(self, topic: str) -> list[Message]:
        return []


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[Database, Outbox]]:
    database = Database(sqlite_url(tmp_path / "outbox.db"))
    metadata = MetaData()
    outbox = Outbox(outbox_table(metadata))
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database, outbox
    await database.engine.dispose()


async def write(database: Database, outbox: Outbox, *followees: int) -> None:
    async with database.transaction() as session:
        for followee in followees:
            event = FollowCreated(follower_id=1, followee_id=followee, followee_followers_count=1)
            await outbox.add(session, event)


def relay_of(database: Database, outbox: Outbox, bus: RecordingBus, **kw: object) -> OutboxRelay:
    return OutboxRelay(database=database, outbox=outbox, bus=bus, **kw)  # type: ignore[arg-type]


def followees(bus: RecordingBus) -> list[int]:
    decoded = [Envelope.decode(m.value) for m in bus.published]
    return [e.event.followee_id for e in decoded if e is not None]  # type: ignore[attr-defined]


async def unsent(database: Database, outbox: Outbox) -> int:
    table = outbox.table
    async with database.transaction() as session:
        rows = await session.execute(select(table.c.id).where(table.c.sent_at.is_(None)))
        return len(rows.all())


async def test_rows_go_out_in_order_in_batches_and_are_marked_sent(
    store: tuple[Database, Outbox],
) -> None:
    database, outbox = store
    await write(database, outbox, 1, 2, 3, 4, 5)
    bus = RecordingBus()
    relay = relay_of(database, outbox, bus, batch_size=2)
    assert [await relay.publish_pending() for _ in range(4)] == [2, 2, 1, 0]
    assert followees(bus) == [1, 2, 3, 4, 5]
    assert {m.key for m in bus.published} == {"1"}  # keyed by follower: one partition's order
    assert await unsent(database, outbox) == 0


async def test_a_failed_send_leaves_the_batch_unsent_and_claimable_again_at_once(
    store: tuple[Database, Outbox],
) -> None:
    database, outbox = store
    await write(database, outbox, 1, 2)
    bus = RecordingBus()
    relay = relay_of(database, outbox, bus)
    bus.down = True
    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    assert await unsent(database, outbox) == 2
    bus.down = False
    # No lease left to wait out: the next attempt sends the same rows.
    assert await relay.publish_pending() == 2
    assert followees(bus) == [1, 2]


async def test_a_batch_under_lease_is_claimed_by_no_other_relay(
    store: tuple[Database, Outbox],
) -> None:
    database, outbox = store
    await write(database, outbox, 1, 2, 3)
    first = relay_of(database, outbox, RecordingBus(), batch_size=2)
    second = relay_of(database, outbox, RecordingBus(), batch_size=2)
    claimed = await first.claim()  # sending, as far as anyone can tell
    assert len(claimed) == 2
    # Not even the row outside the batch: per-key order holds across replicas.
    assert await second.claim() == []


async def test_the_gauges_count_the_unsent_rows_and_the_oldest_ones_age(
    store: tuple[Database, Outbox],
) -> None:
    database, outbox = store
    relay = relay_of(database, outbox, RecordingBus())
    assert await relay.measure() == (0, 0.0)
    await write(database, outbox, 1, 2)
    count, age = await relay.measure()
    assert count == 2
    assert 0.0 <= age < 60
    await relay.publish_pending()
    assert await relay.measure() == (0, 0.0)
