"""The consumer path every consuming service shares, on the in-process bus and (real mode) Kafka:
decode once, dispatch by type, bounded retries, dead letters, their listing and replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from photogram_contracts.events import FOLLOWS_TOPIC, Envelope, FollowCreated, FollowDeleted

from backends import REAL, REAL_BACKEND_VARIABLES, require
from helpers import eventually
from photogram_common.bus import DEADLETTER_TOPIC, EventBus, OutgoingMessage
from photogram_common.bus.consumer import EventConsumer, RetryPolicy, WithEnvelope
from photogram_common.bus.inprocess import InProcessEventBus
from photogram_common.bus.kafka import KafkaEventBus
from photogram_common.clients import ServiceUnavailable
from photogram_common.deadletters import dead_letters, main, replay
from photogram_common.problems import Problem

BUSES = ["in-process", *(["kafka"] if REAL else [])]
GROUP = "path-test"
QUICK = RetryPolicy(attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.05)


def kafka_bus(prefix: str, bootstrap: str = "") -> KafkaEventBus:
    return KafkaEventBus(
        bootstrap=bootstrap or require("PHOTOGRAM_KAFKA_BOOTSTRAP"),
        topics=[FOLLOWS_TOPIC],
        partitions=2,
        prefix=prefix,
    )


@pytest.fixture(params=BUSES)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    made: EventBus
    if request.param == "in-process":
        made = InProcessEventBus(partitions=2)
    else:
        made = kafka_bus(f"t{uuid.uuid4().hex[:12]}.")
    await made.start()
    try:
        yield made
    finally:
        await made.close()


def follow(follower: int, followee: int = 7) -> OutgoingMessage:
    event = FollowCreated(follower_id=follower, followee_id=followee, followee_followers_count=1)
    return OutgoingMessage(event.topic, key=event.key(), value=Envelope.wrap(event).encode())


@contextlib.asynccontextmanager
async def consuming(consumer: EventConsumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        await consumer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@pytest.fixture
def consumer_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="photogram_common"):
        yield caplog


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("photogram_common.bus")
    ]


async def test_an_undecodable_record_is_dead_lettered_once_and_its_partition_moves_on(
    bus: EventBus, consumer_logs: pytest.LogCaptureFixture
) -> None:
    good = follow(1)
    garbage = [
        OutgoingMessage(FOLLOWS_TOPIC, key=good.key, value=b"\xff\x00 not an envelope"),
        OutgoingMessage(FOLLOWS_TOPIC, key="\udcff-not-utf8", value=b'{"type": "follow.created"}'),
    ]
    await bus.publish([*garbage, good])
    handled: list[FollowCreated] = []

    async def record(event: FollowCreated) -> None:
        handled.append(event)

    consumer = EventConsumer(bus, group=GROUP, routes={FollowCreated: [record]}, policy=QUICK)
    async with consuming(consumer):
        await eventually(lambda: _at_least(handled, 1), timeout=30)
        letters = await eventually(lambda: _letters(bus, 2), timeout=30)
    assert [e.follower_id for e in handled] == [1]
    by_key = {letter.key: letter for letter in letters}
    assert set(by_key) == {good.key, "\udcff-not-utf8"}
    first = by_key[good.key]
    assert (first.group, first.topic, first.value) == (GROUP, FOLLOWS_TOPIC, garbage[0].value)
    assert first.reason == "undecodable"
    assert first.attempts == 1
    assert first.error
    assert first.offset == 0
    assert first.partition in (0, 1)
    assert consumer.stats["dead_lettered"] == 2
    # One line per record given up on, and no retry storm before it.
    assert len(warnings_of(consumer_logs)) == 2


async def _at_least(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def _letters(bus: EventBus, n: int, **kwargs: Any) -> Any:
    found = await dead_letters(bus, **kwargs)
    return found if len(found) >= n else None


async def test_an_event_that_always_fails_is_retried_then_dead_lettered(
    bus: EventBus, consumer_logs: pytest.LogCaptureFixture
) -> None:
    poison, good = follow(404), follow(1)
    await bus.publish([OutgoingMessage(poison.topic, good.key, poison.value), good])
    attempts: list[int] = []
    handled: list[int] = []

    async def peer_says_not_found(event: FollowCreated) -> None:
        if event.follower_id == 404:
            attempts.append(event.follower_id)
            raise Problem(404, "No such user.")
        handled.append(event.follower_id)

    consumer = EventConsumer(
        bus, group=GROUP, routes={FollowCreated: [peer_says_not_found]}, policy=QUICK
    )
    async with consuming(consumer):
        await eventually(lambda: _at_least(handled, 1), timeout=30)
        (letter,) = await eventually(lambda: _letters(bus, 1), timeout=30)
    assert handled == [1]
    assert len(attempts) == QUICK.attempts
    assert (letter.reason, letter.attempts, letter.value) == ("permanent", 3, poison.value)
    assert "No such user." in letter.error
    (line,) = warnings_of(consumer_logs)
    assert line.exc_info is not None  # the one traceback, with the dead letter


async def test_a_transient_failure_retries_past_the_attempts_and_is_not_dead_lettered(
    bus: EventBus,
) -> None:
    await bus.publish([follow(1)])
    failures: list[int] = []
    handled: list[int] = []

    async def peer_comes_back(event: FollowCreated) -> None:
        if len(failures) < 3 * QUICK.attempts:
            failures.append(1)
            raise ServiceUnavailable("user-service")
        handled.append(event.follower_id)

    consumer = EventConsumer(
        bus, group=GROUP, routes={FollowCreated: [peer_comes_back]}, policy=QUICK
    )
    async with consuming(consumer):
        await eventually(lambda: _at_least(handled, 1), timeout=30)
    assert handled == [1]
    assert len(failures) == 9
    assert await dead_letters(bus) == []
    assert consumer.stats["dead_lettered"] == 0


async def test_a_transient_failure_is_dead_lettered_once_past_its_deadline(bus: EventBus) -> None:
    await bus.publish([follow(503), follow(1)])
    handled: list[int] = []

    async def redis_down_for_one(event: FollowCreated) -> None:
        if event.follower_id == 503:
            raise ConnectionError("redis is down")
        handled.append(event.follower_id)

    policy = RetryPolicy(
        attempts=1, backoff_seconds=0.01, max_backoff_seconds=0.02, transient_deadline_seconds=0.05
    )
    consumer = EventConsumer(
        bus, group=GROUP, routes={FollowCreated: [redis_down_for_one]}, policy=policy
    )
    async with consuming(consumer):
        await eventually(lambda: _at_least(handled, 1), timeout=30)
        (letter,) = await eventually(lambda: _letters(bus, 1), timeout=30)
    assert letter.reason == "transient"
    assert letter.attempts > 1


async def test_a_consumer_stopped_while_retrying_leaves_the_record_to_its_group(
    bus: EventBus,
) -> None:
    await bus.publish([follow(1)])
    failures: list[int] = []

    async def down(event: FollowCreated) -> None:
        failures.append(1)
        raise ServiceUnavailable("post-service")

    consumer = EventConsumer(bus, group=GROUP, routes={FollowCreated: [down]}, policy=QUICK)
    task = asyncio.create_task(consumer.run())
    await eventually(lambda: _at_least(failures, 1), timeout=30)
    await consumer.stop()
    await asyncio.wait_for(task, timeout=30)  # the run ends, neither committed nor dead-lettered
    handled: list[int] = []

    async def up(event: FollowCreated) -> None:
        handled.append(event.follower_id)

    async with consuming(EventConsumer(bus, group=GROUP, routes={FollowCreated: [up]})):
        await eventually(lambda: _at_least(handled, 1), timeout=30)
    assert handled == [1]
    assert await dead_letters(bus) == []


async def test_a_record_whose_partition_moved_mid_retry_is_left_to_the_new_owner(
    bus: EventBus,
) -> None:
    await bus.publish([follow(1)])
    failures: list[int] = []
    handled: list[int] = []

    async def down_then_up(event: FollowCreated) -> None:
        if len(failures) < 3:
            failures.append(1)
            raise ServiceUnavailable("user-service")
        handled.append(event.follower_id)

    policy = RetryPolicy(attempts=1, backoff_seconds=0.01, transient_deadline_seconds=0.01)
    consumer = EventConsumer(
        bus, group=GROUP, routes={FollowCreated: [down_then_up]}, policy=policy
    )
    owns = consumer.inner.owns
    consumer.inner.owns = lambda message: False  # type: ignore[method-assign]  # a rebalance
    async with consuming(consumer):
        await eventually(lambda: _at_least(failures, 3), timeout=30)
        consumer.inner.owns = owns  # type: ignore[method-assign]
        await eventually(lambda: _at_least(handled, 1), timeout=30)
    # Past its deadline, yet not dead-lettered: the record was no longer this member's.
    assert consumer.stats["handed_over"] >= 1
    assert await dead_letters(bus) == []


async def test_routes_dispatch_by_type_and_skip_what_the_group_does_not_handle(
    bus: EventBus,
) -> None:
    unfollow = FollowDeleted(follower_id=1, followee_id=7, followee_followers_count=0)
    unknown = json.dumps({"event_id": "x", "type": "follow.muted", "version": 1, "data": {}})
    await bus.publish(
        [
            OutgoingMessage(FOLLOWS_TOPIC, "1", unknown.encode()),
            OutgoingMessage(FOLLOWS_TOPIC, "1", Envelope.wrap(unfollow).encode()),
            follow(1),
        ]
    )
    seen: list[tuple[str, Any]] = []

    async def first(event: FollowCreated) -> None:
        seen.append(("first", event.follower_id))

    async def second(envelope: Envelope) -> None:
        seen.append(("second", envelope.event_id))

    routes = {FollowCreated: [first, WithEnvelope(second)]}
    consumer = EventConsumer(bus, group=GROUP, routes=routes, policy=QUICK)
    async with consuming(consumer):
        await eventually(lambda: _at_least(seen, 2), timeout=30)
    assert seen[0] == ("first", 1)
    assert seen[1][0] == "second"
    assert consumer.stats["skipped"] == 2  # the unknown type and the unrouted one
    assert await dead_letters(bus) == []


async def test_dead_letters_are_listed_and_replayed_to_their_own_topic(bus: EventBus) -> None:
    poison = follow(404)
    await bus.publish([poison])
    broken = True
    handled: list[int] = []

    async def until_fixed(event: FollowCreated) -> None:
        if broken:
            raise Problem(404, "No such user.")
        handled.append(event.follower_id)

    consumer = EventConsumer(bus, group=GROUP, routes={FollowCreated: [until_fixed]}, policy=QUICK)
    async with consuming(consumer):
        (letter,) = await eventually(lambda: _letters(bus, 1, group=GROUP), timeout=30)
        assert await dead_letters(bus, group="another-group") == []
        broken = False  # the fix is deployed
        (replayed,) = await replay(bus, group=GROUP)
        assert replayed.value == poison.value
        await eventually(lambda: _at_least(handled, 1), timeout=30)
    assert handled == [404]
    assert await dead_letters(bus) == []  # replayed: no longer outstanding
    (kept,) = await dead_letters(bus, include_replayed=True)
    assert kept.at == letter.at
    originals = [m for m in await bus.read_topic(FOLLOWS_TOPIC) if m.value == poison.value]
    assert len(originals) == 2  # the first delivery and the replay


@pytest.mark.parametrize("kind", BUSES)
def test_the_command_line_lists_and_replays_dead_letters(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = require("PHOTOGRAM_KAFKA_BOOTSTRAP") if kind == "kafka" else ""
    for name in REAL_BACKEND_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PHOTOGRAM_DATA_DIR", str(tmp_path))
    prefix = f"t{uuid.uuid4().hex[:12]}."
    if kind == "kafka":
        monkeypatch.setenv("PHOTOGRAM_KAFKA_BOOTSTRAP", bootstrap)
        monkeypatch.setenv("PHOTOGRAM_KAFKA_PREFIX", prefix)
        monkeypatch.setenv("PHOTOGRAM_KAFKA_PARTITIONS", "2")

    def open_bus() -> EventBus:
        if kind == "kafka":
            return kafka_bus(prefix, bootstrap)
        return InProcessEventBus(path=tmp_path / "bus.db")

    poison = follow(404)

    async def dead_letter_one() -> None:
        bus = open_bus()
        await bus.start()
        try:
            await bus.publish([poison])

            async def fails(event: FollowCreated) -> None:
                raise Problem(404, "No such user.")

            consumer = EventConsumer(
                bus, group=GROUP, routes={FollowCreated: [fails]}, policy=QUICK
            )
            async with consuming(consumer):
                await eventually(lambda: _letters(bus, 1), timeout=30)
        finally:
            await bus.close()

    asyncio.run(dead_letter_one())
    assert main(["list", "--group", GROUP]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    listed = json.loads(line)
    assert (listed["group"], listed["topic"], listed["reason"]) == (
        GROUP,
        FOLLOWS_TOPIC,
        "permanent",
    )
    assert listed["value"] == poison.value.decode()
    assert main(["list", "--group", "nobody"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["replay", "--group", GROUP]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["list"]) == 0
    assert capsys.readouterr().out == ""

    async def topic_values() -> list[bytes]:
        bus = open_bus()
        await bus.start()
        try:
            return [m.value for m in await bus.read_topic(FOLLOWS_TOPIC)]
        finally:
            await bus.close()

    assert asyncio.run(topic_values()) == [poison.value, poison.value]

    if kind == "in-process":
        # While the embedded system holds the bus file, the tool refuses rather than fork it.
        async def while_running() -> int:
            bus = open_bus()
            await bus.start()
            try:
                return await asyncio.to_thread(main, ["list"])
            finally:
                await bus.close()

        assert asyncio.run(while_running()) == 2


async def test_the_dead_letter_topic_is_a_topic_of_the_bus(bus: EventBus) -> None:
    # Kafka makes it with the bus's own topics; the in-process bus has every topic.
    await bus.publish([OutgoingMessage(DEADLETTER_TOPIC, "k", b"{}")])
    assert [m.value for m in await bus.read_topic(DEADLETTER_TOPIC)] == [b"{}"]
