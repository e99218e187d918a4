"""The consumer path's rules on a fake bus, at unit speed: decode once, dispatch by type in
order, retry a permanent failure a bounded number of times and a transient one until its
deadline, then dead-letter the record so its partition moves on
(photogram_common.bus.consumer; the same path on the in-process bus and Kafka is
tests/contract/test_consumer_path.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest
from photogram_contracts.events import Envelope, FollowCreated, FollowDeleted

from photogram_common.bus import DEADLETTER_TOPIC, Handler, Message, OutgoingMessage
from photogram_common.bus.consumer import (
    EventConsumer,
    PermanentError,
    RetryPolicy,
    TransientError,
    WithEnvelope,
)

QUICK = RetryPolicy(attempts=3, backoff_seconds=0.001, max_backoff_seconds=0.002)


class FakeConsumer:
    def __init__(self) -> None:
        self.owned = True

    async def run(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def owns(self, message: Message) -> bool:
        return self.owned


class FakeBus:
    """Records what is published; its first `failing_publishes` publishes fail."""

    def __init__(self, failing_publishes: int = 0) -> None:
        self.published: list[OutgoingMessage] = []
        self.failing_publishes = failing_publishes
        self.member = FakeConsumer()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.failing_publishes:
            self.failing_publishes -= 1
            raise ConnectionError("broker unreachable")
        self.published.extend(messages)

    def consumer(self, *, group: str, topics: Sequence[str], handler: Handler) -> FakeConsumer:
        return self.member

    async def read_topic(self, topic: str) -> list[Message]:
        return []

    async def ping(self) -> None:
        return None

    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead letters published, as their JSON bodies (the value decoded)."""
        letters = []
        for message in self.published:
            if message.topic == DEADLETTER_TOPIC:
                body = json.loads(message.value)
                body["value"] = base64.b64decode(body.pop("value_b64"))
                letters.append(body)
        return letters


def record(value: bytes, offset: int = 7) -> Message:
    return Message(topic="photogram.follows.v1", partition=1, offset=offset, key="1", value=value)


def follow(follower: int = 1, followee: int = 2) -> bytes:
    event = FollowCreated(follower_id=follower, followee_id=followee, followee_followers_count=1)
    return Envelope.wrap(event).encode()


def consumer_of(bus: FakeBus, routes: Any, policy: RetryPolicy = QUICK) -> EventConsumer:
    return EventConsumer(bus, group="unit", routes=routes, policy=policy)


async def test_each_handler_of_the_type_runs_in_order_and_the_record_is_done() -> None:
    seen: list[str] = []

    async def first(event: FollowCreated) -> None:
        seen.append(f"first {event.followee_id}")

    async def second(envelope: Envelope) -> None:
        seen.append(f"second {type(envelope.event).__name__} {len(envelope.event_id)}")

    bus = FakeBus()
    consumer = consumer_of(bus, {FollowCreated: [first, WithEnvelope(second)]})
    await consumer.on_message(record(follow(followee=5)))
    assert seen == ["first 5", "second FollowCreated 32"]
    assert consumer.stats["handled"] == 1
    assert bus.published == []


async def test_a_type_the_group_does_not_route_is_skipped_not_dead_lettered() -> None:
    async def handler(event: FollowDeleted) -> None:
        raise AssertionError("not this type")

    bus = FakeBus()
    consumer = consumer_of(bus, {FollowDeleted: [handler]})
    await consumer.on_message(record(follow()))
    assert consumer.stats["skipped"] == 1
    assert bus.dead_letters() == []


async def test_an_undecodable_record_is_dead_lettered_at_once_with_its_bytes() -> None:
    calls = 0

    async def handler(event: FollowCreated) -> None:
        nonlocal calls
        calls += 1

    bus = FakeBus()
    consumer = consumer_of(bus, {FollowCreated: [handler]})
    await consumer.on_message(record(b"\xff not json", offset=41))
    (letter,) = bus.dead_letters()
    where = (letter["reason"], letter["attempts"], letter["offset"], letter["partition"])
    assert where == ("undecodable", 1, 41, 1)
    assert letter["value"] == b"\xff not json"
    assert letter["group"] == "unit"
    assert calls == 0


async def test_a_permanent_failure_is_tried_the_policys_attempts_then_dead_lettered() -> None:
    calls = 0

    async def handler(event: FollowCreated) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("the followee is gone")

    bus = FakeBus()
    consumer = consumer_of(bus, {FollowCreated: [handler]})
    await consumer.on_message(record(follow()))
    assert calls == QUICK.attempts
    (letter,) = bus.dead_letters()
    assert (letter["reason"], letter["attempts"]) == ("permanent", QUICK.attempts)
    assert "the followee is gone" in letter["error"]
    assert consumer.stats["dead_lettered"] == 1


async def test_a_transient_failure_is_retried_past_the_attempts_until_it_succeeds() -> None:
    calls = 0

    async def handler(event: FollowCreated) -> None:
        nonlocal calls
        calls += 1
        if calls <= QUICK.attempts + 2:
            raise TransientError("Redis is down")

    bus = FakeBus()
    consumer = consumer_of(bus, {FollowCreated: [handler]})
    await consumer.on_message(record(follow()))
    assert calls == QUICK.attempts + 3
    assert bus.dead_letters() == []
    assert consumer.stats["handled"] == 1
    assert consumer.stats["retries"] == QUICK.attempts + 2


async def test_a_transient_failure_past_its_deadline_is_dead_lettered() -> None:
    async def handler(event: FollowCreated) -> None:
        raise TransientError("still down")

    policy = RetryPolicy(
        attempts=1,
        backoff_seconds=0.001,
        max_backoff_seconds=0.002,
        transient_deadline_seconds=0.02,
    )
    bus = FakeBus()
    consumer = consumer_of(bus, {FollowCreated: [handler]}, policy)
    await consumer.on_message(record(follow()))
    (letter,) = bus.dead_letters()
    assert letter["reason"] == "transient"
    assert letter["attempts"] > 1


async def test_a_dead_letter_the_bus_refuses_is_published_again_before_the_record_is_done() -> None:
    async def handler(event: FollowCreated) -> None:
        raise PermanentError("bad")

    bus = FakeBus(failing_publishes=2)
    consumer = consumer_of(bus, {FollowCreated: [handler]})
    await consumer.on_message(record(follow()))
    assert len(bus.dead_letters()) == 1
    assert bus.failing_publishes == 0


async def test_a_retry_stops_when_the_partition_moved_to_another_member() -> None:
    from photogram_common.bus import Stopped

    calls = 0
    bus = FakeBus()

    async def handler(event: FollowCreated) -> None:
        nonlocal calls
        calls += 1
        bus.member.owned = False  # a rebalance while the first attempt fails
        raise TransientError("down")

    consumer = consumer_of(bus, {FollowCreated: [handler]})
    with pytest.raises(Stopped):
        await consumer.on_message(record(follow()))
    assert calls == 1
    assert consumer.stats["handed_over"] == 1
    assert bus.dead_letters() == []
