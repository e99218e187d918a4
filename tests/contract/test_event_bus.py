"""The event bus's contract, in-process and (in the real mode) on Kafka, and the outbox on it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from photogram_contracts.events import FOLLOWS_TOPIC, Envelope, FollowCreated

from backends import REAL, create_database, drop_database, require
from helpers import eventually
from photogram_common.bus import EventBus, Message, OutgoingMessage
from photogram_common.bus.inprocess import InProcessEventBus
from photogram_common.bus.kafka import KafkaEventBus
from photogram_common.db import Database, sqlite_url
from photogram_common.migrations import upgrade_to_head
from photogram_common.outbox import Outbox, OutboxRelay
from user_service.models import outbox as users_outbox

BUSES = ["in-process", *(["kafka"] if REAL else [])]
TOPIC = "contract.v1"


def make_bus(kind: str, topics: Sequence[str]) -> EventBus:
    if kind == "in-process":
        return InProcessEventBus(partitions=2)
    return KafkaEventBus(
        bootstrap=require("PHOTOGRAM_KAFKA_BOOTSTRAP"),
        topics=topics,
        partitions=2,
        prefix=f"t{uuid.uuid4().hex[:12]}.",
    )


@pytest.fixture(params=BUSES)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    bus = make_bus(request.param, [TOPIC, FOLLOWS_TOPIC])
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def consuming(bus: EventBus, group: str, handler) -> AsyncIterator[asyncio.Task]:  # type: ignore[no-untyped-def]
    consumer = bus.consumer(group=group, topics=[TOPIC, FOLLOWS_TOPIC], handler=handler)
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        await consumer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def test_every_message_arrives_in_order_per_key(bus: EventBus) -> None:
    sent = [OutgoingMessage(TOPIC, key=f"user-{i % 3}", value=str(i).encode()) for i in range(30)]
    await bus.publish(sent[:10])
    await bus.publish(sent[10:])
    got: dict[str, list[int]] = defaultdict(list)

    async def handler(message: Message) -> None:
        assert message.topic == TOPIC
        got[message.key].append(int(message.value))

    async with consuming(bus, "orders", handler):
        await eventually(lambda: _total(got), timeout=30)
    for key in ("user-0", "user-1", "user-2"):
        assert got[key] == [i for i in range(30) if f"user-{i % 3}" == key]


async def _total(got: dict[str, list[int]]) -> bool:
    return sum(len(v) for v in got.values()) >= 30


async def test_headers_travel_with_their_record(bus: EventBus) -> None:
    # The trace context rides in a header (photogram_common.tracing); events never read them.
    headers = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
    await bus.publish(
        [
            OutgoingMessage(TOPIC, key="k", value=b"with", headers=headers),
            OutgoingMessage(TOPIC, key="k", value=b"without"),
        ]
    )
    got: list[Message] = []

    async def handler(message: Message) -> None:
        got.append(message)

    async with consuming(bus, "headers", handler):
        await eventually(lambda: _at_least(got, 2), timeout=30)
    assert [(m.value, m.headers) for m in got] == [(b"with", headers), (b"without", ())]


async def _at_least(got: list[Message], n: int) -> bool:
    return len(got) >= n


async def test_a_failing_handler_gets_the_message_again(bus: EventBus) -> None:
    await bus.publish([OutgoingMessage(TOPIC, key="k", value=b"once")])
    attempts: list[bytes] = []

    async def flaky(message: Message) -> None:
        attempts.append(message.value)
        if len(attempts) == 1:
            raise RuntimeError("transient failure")

    async with consuming(bus, "retries", flaky):
        await eventually(lambda: _at_least(attempts, 2), timeout=30)
    assert attempts[:2] == [b"once", b"once"]


async def _at_least(items: list, n: int) -> bool:  # type: ignore[type-arg]
    return len(items) >= n


async def test_a_consumer_killed_before_committing_gets_the_event_redelivered(
    bus: EventBus,
) -> None:
    await bus.publish(
        [
            OutgoingMessage(TOPIC, key="k", value=b"first"),
            OutgoingMessage(TOPIC, key="k", value=b"second"),
        ]
    )
    first_seen = asyncio.Event()
    handled: list[bytes] = []

    async def dies_mid_handler(message: Message) -> None:
        first_seen.set()
        await asyncio.Event().wait()  # never finishes: the process dies here

    consumer = bus.consumer(group="crashy", topics=[TOPIC], handler=dies_mid_handler)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(first_seen.wait(), timeout=30)
    task.cancel()  # killed while handling, before any commit
    with contextlib.suppress(asyncio.CancelledError):
        await task

    async def records(message: Message) -> None:
        handled.append(message.value)

    async with consuming(bus, "crashy", records):
        await eventually(lambda: _at_least(handled, 2), timeout=30)
    assert handled == [b"first", b"second"]


async def test_committed_messages_are_not_redelivered_to_the_group(bus: EventBus) -> None:
    await bus.publish([OutgoingMessage(TOPIC, key="k", value=b"a")])
    seen: list[bytes] = []

    async def record(message: Message) -> None:
        seen.append(message.value)

    async with consuming(bus, "steady", record):
        await eventually(lambda: _at_least(seen, 1), timeout=30)
        await asyncio.sleep(0.5)  # let the commit after the batch happen
    await bus.publish([OutgoingMessage(TOPIC, key="k", value=b"b")])
    async with consuming(bus, "steady", record):
        await eventually(lambda: _at_least(seen, 2), timeout=30)
    assert seen == [b"a", b"b"]


class _CrashingBus:
    """A bus that dies at a chosen moment of a publish, as a process would."""

    def __init__(self, inner: EventBus, *, after_send: bool) -> None:
        self.inner = inner
        self.after_send = after_send

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.after_send:
            await self.inner.publish(messages)
        raise ConnectionError("process died")


@pytest.fixture
async def outbox_db(bus: EventBus, tmp_path: Path) -> AsyncIterator[Database]:
    if isinstance(bus, InProcessEventBus):
        db = Database(sqlite_url(tmp_path / "users.db"))
        await upgrade_to_head(db, Path("user-service/user_service/migrations"))
        yield db
        await db.dispose()
        return
    name = f"t_{uuid.uuid4().hex[:12]}_outbox"
    db = Database(await create_database(name))
    await upgrade_to_head(db, Path("user-service/user_service/migrations"))
    try:
        yield db
    finally:
        await db.dispose()
        await drop_database(name)


async def _commit_event(db: Database, outbox: Outbox) -> FollowCreated:
    event = FollowCreated(follower_id=1, followee_id=2, followee_followers_count=1)
    async with db.transaction() as session:
        await outbox.add(session, event)
    return event


async def test_outbox_relay_stopped_between_commit_and_send_delivers_after_restart(
    bus: EventBus, outbox_db: Database
) -> None:
    outbox = Outbox(users_outbox)
    event = await _commit_event(outbox_db, outbox)
    crashed = OutboxRelay(
        database=outbox_db, outbox=outbox, bus=_CrashingBus(bus, after_send=False)
    )  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await crashed.publish_pending()
    received: list[Envelope] = []

    async def record(message: Message) -> None:
        envelope = Envelope.decode(message.value)
        assert envelope is not None
        received.append(envelope)

    async with consuming(bus, "outbox-readers", record):
        await asyncio.sleep(0.5)
        assert received == []  # nothing reached the broker
        restarted = OutboxRelay(database=outbox_db, outbox=outbox, bus=bus)
        assert await restarted.publish_pending() == 1
        assert await restarted.publish_pending() == 0  # marked sent
        await eventually(lambda: _at_least(received, 1), timeout=30)
    assert received[0].event == event


async def test_outbox_relay_dying_after_send_redelivers_with_the_same_event_id(
    bus: EventBus, outbox_db: Database
) -> None:
    outbox = Outbox(users_outbox)
    await _commit_event(outbox_db, outbox)
    crashed = OutboxRelay(database=outbox_db, outbox=outbox, bus=_CrashingBus(bus, after_send=True))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await crashed.publish_pending()
    assert await OutboxRelay(database=outbox_db, outbox=outbox, bus=bus).publish_pending() == 1
    ids: list[str] = []

    async def record(message: Message) -> None:
        envelope = Envelope.decode(message.value)
        assert envelope is not None
        ids.append(envelope.event_id)

    async with consuming(bus, "dedupers", record):
        await eventually(lambda: _at_least(ids, 2), timeout=30)
    # At least once: the copy carries the same ID, which consumers use to deduplicate.
    assert len(ids) == 2
    assert ids[0] == ids[1]


async def test_sent_outbox_rows_are_purged_after_the_retention(
    bus: EventBus, outbox_db: Database
) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select

    outbox = Outbox(users_outbox)
    await _commit_event(outbox_db, outbox)
    relay = OutboxRelay(database=outbox_db, outbox=outbox, bus=bus, keep_sent=timedelta(0))
    assert await relay.purge_sent() == 0  # unsent rows are never purged
    assert await relay.publish_pending() == 1
    assert await relay.purge_sent() == 1
    async with outbox_db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(users_outbox)) == 0


async def test_a_stopping_consumer_commits_what_it_handled(bus: EventBus) -> None:
    await bus.publish(
        [
            OutgoingMessage(TOPIC, key="k", value=b"handled"),
            OutgoingMessage(TOPIC, key="k", value=b"in flight"),
        ]
    )
    in_flight = asyncio.Event()
    first: list[bytes] = []

    async def stops_mid_batch(message: Message) -> None:
        if message.value == b"in flight":
            in_flight.set()
            await asyncio.Event().wait()  # still running when the service shuts down
        first.append(message.value)

    consumer = bus.consumer(group="shutdown", topics=[TOPIC], handler=stops_mid_batch)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(in_flight.wait(), timeout=30)
    # What a service's lifespan does on shutdown: stop, then cancel.
    await consumer.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert first == [b"handled"]
    again: list[bytes] = []

    async def record(message: Message) -> None:
        again.append(message.value)

    async with consuming(bus, "shutdown", record):
        await eventually(lambda: _at_least(again, 1), timeout=30)
        await asyncio.sleep(0.5)  # room for a redelivery to show
    assert again == [b"in flight"]


async def test_the_embedded_bus_keeps_its_log_and_offsets_across_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bus.db"
    bus = InProcessEventBus(partitions=2, path=path)
    await bus.start()
    await bus.publish([OutgoingMessage(TOPIC, "k", b"one"), OutgoingMessage(TOPIC, "k", b"two")])
    seen: list[bytes] = []

    async def only_the_first(message: Message) -> None:
        if message.value != b"one":
            await asyncio.Event().wait()  # the process dies here
        seen.append(message.value)

    consumer = bus.consumer(group="counter", topics=[TOPIC], handler=only_the_first)
    task = asyncio.create_task(consumer.run())
    await eventually(lambda: _at_least(seen, 1), timeout=30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await bus.close()

    restarted = InProcessEventBus(partitions=2, path=path)
    await restarted.start()
    try:
        assert restarted.lag("counter", [TOPIC]) == 1
        assert restarted.lag("a-new-group", [TOPIC]) == 2
        await restarted.publish([OutgoingMessage(TOPIC, "k", b"three")])
        after: list[Message] = []

        async def record(message: Message) -> None:
            after.append(message)

        async with consuming(restarted, "counter", record):
            await eventually(lambda: _at_least(after, 2), timeout=30)
        assert [m.value for m in after] == [b"two", b"three"]
        assert [m.offset for m in after] == [1, 2]
    finally:
        await restarted.close()


async def test_the_embedded_bus_drops_records_past_its_retention_but_keeps_counting(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    path = tmp_path / "bus.db"
    bus = InProcessEventBus(partitions=1, path=path)
    await bus.start()
    await bus.publish([OutgoingMessage(TOPIC, "k", str(i).encode()) for i in range(3)])
    await bus.close()
    expired = InProcessEventBus(partitions=1, path=path, retention=timedelta(0))
    await expired.start()
    try:
        # Only each partition's newest record is kept: it holds the next offset.
        assert [(m.offset, m.value) for m in await expired.read_topic(TOPIC)] == [(2, b"2")]
        await expired.publish([OutgoingMessage(TOPIC, "k", b"3")])
        assert [m.offset for m in await expired.read_topic(TOPIC)] == [2, 3]
    finally:
        await expired.close()


async def test_one_process_at_a_time_holds_the_embedded_bus_file(tmp_path: Path) -> None:
    from photogram_common.bus.inprocess import BusInUse

    first = InProcessEventBus(path=tmp_path / "bus.db")
    await first.start()
    try:
        with pytest.raises(BusInUse):
            await InProcessEventBus(path=tmp_path / "bus.db").start()
    finally:
        await first.close()
    second = InProcessEventBus(path=tmp_path / "bus.db")
    await second.start()
    await second.close()


class _StalledBus:
    """A broker that accepts the connection and then answers nothing until told to."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner
        self.sending = asyncio.Event()
        self.answer = asyncio.Event()

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.sending.set()
        await self.answer.wait()
        await self.inner.publish(messages)


async def test_the_outbox_relay_holds_no_transaction_while_it_sends(
    bus: EventBus, outbox_db: Database
) -> None:
    outbox = Outbox(users_outbox)
    await _commit_event(outbox_db, outbox)
    stalled = _StalledBus(bus)
    relay = OutboxRelay(database=outbox_db, outbox=outbox, bus=stalled)  # type: ignore[arg-type]
    other = OutboxRelay(database=outbox_db, outbox=outbox, bus=bus)
    sending = asyncio.create_task(relay.publish_pending())
    try:
        await asyncio.wait_for(stalled.sending.wait(), timeout=30)
        # No connection is checked out: no transaction, no lock, nothing idle in transaction.
        assert outbox_db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        # The service keeps writing meanwhile, and another relay claims nothing (per-key
        # order: one batch in flight at a time).
        await _commit_event(outbox_db, outbox)
        assert await asyncio.wait_for(other.publish_pending(), timeout=30) == 0
        stalled.answer.set()
        assert await asyncio.wait_for(sending, timeout=30) == 1
    finally:
        stalled.answer.set()
        sending.cancel()
    assert await asyncio.wait_for(other.publish_pending(), timeout=30) == 1  # the second row
    assert await other.publish_pending() == 0


async def test_a_send_that_never_completes_times_out_and_releases_its_batch(
    bus: EventBus, outbox_db: Database
) -> None:
    outbox = Outbox(users_outbox)
    event = await _commit_event(outbox_db, outbox)
    stalled = _StalledBus(bus)
    relay = OutboxRelay(
        database=outbox_db,
        outbox=outbox,
        bus=stalled,  # type: ignore[arg-type]
        send_timeout=0.2,
    )
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(relay.publish_pending(), timeout=30)
    # Released: the next attempt need not wait for the lease to run out.
    healthy = OutboxRelay(database=outbox_db, outbox=outbox, bus=bus)
    assert await healthy.publish_pending() == 1
    received: list[Envelope] = []

    async def record(message: Message) -> None:
        envelope = Envelope.decode(message.value)
        assert envelope is not None
        received.append(envelope)

    async with consuming(bus, "after-timeout", record):
        await eventually(lambda: _at_least(received, 1), timeout=30)
    assert received[0].event == event


async def test_a_relay_that_died_mid_send_leaves_a_lease_that_runs_out(
    bus: EventBus, outbox_db: Database
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from photogram_common.timeutil import utcnow

    outbox = Outbox(users_outbox)
    await _commit_event(outbox_db, outbox)
    dead = OutboxRelay(database=outbox_db, outbox=outbox, bus=bus, lease=timedelta(hours=1))
    assert len(await dead.claim()) == 1  # claimed, then the process was killed
    waiting = OutboxRelay(database=outbox_db, outbox=outbox, bus=bus)
    assert await waiting.publish_pending() == 0  # the lease still runs
    async with outbox_db.transaction() as session:  # ... until its time has passed
        await session.execute(
            update(users_outbox).values(claimed_until=utcnow() - timedelta(seconds=1))
        )
    assert await waiting.publish_pending() == 1
    assert await waiting.publish_pending() == 0
