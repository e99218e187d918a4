"""Two fanout-worker processes' worth of consumers share one post stream on Kafka.

A second fanout-worker app joins the system's own in the same consumer group, on topics of
four partitions; posts from authors spread over both members' partitions must each be
handled once and land exactly once in every follower's timeline.

Kafka's consumer groups are what is under test, so this exists only with the real
backends (the in-process bus has no partition assignment between members). Not
collected, not skipped, in the embedded mode.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from photogram_contracts.events import POSTS_TOPIC, Envelope, PostCreated
from photogram_contracts.keys import recent_key, timeline_key

import fanout_worker.app as fanout_app
from backends import REAL
from fanout_worker.settings import FanoutSettings
from helpers import Api, eventually
from photogram_common.bus import OutgoingMessage
from photogram_common.ids import IdGenerator
from photogram_common.runtime import make_bus
from photogram_common.settings import PlatformSettings, resolve_secrets
from photogram_common.timelines import SENTINEL, member

PARTITIONS = 4
POSTS_PER_AUTHOR = 10


async def follow(api: Api, follower: dict[str, Any], followee: dict[str, Any]) -> None:
    response = await api.client.post(
        f"/api/users/{followee['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 200


def posts_partitions(app: Any) -> set[int]:
    """The partitions of the posts topic assigned to a worker app's consumer right now."""
    inner = getattr(app.state.consumer.inner, "_consumer", None)
    if inner is None:
        return set()
    return {tp.partition for tp in inner.assignment() if tp.topic.endswith(POSTS_TOPIC)}


def partition_of(author_id: int) -> int:
    """The partition Kafka's default partitioner gives a post event of this author."""
    partitions = list(range(PARTITIONS))
    return int(DefaultPartitioner()(str(author_id).encode(), partitions, partitions))


def record_posts(app: Any, handled: Counter[int]) -> None:
    """Count the posts a worker app handles (after the handler succeeded)."""
    consumer = app.state.consumer
    original = consumer.dispatch

    async def counting(envelope: Any) -> None:
        await original(envelope)
        if isinstance(envelope.event, PostCreated):
            handled[envelope.event.post_id] += 1

    consumer.dispatch = counting


if REAL:

    @pytest.fixture
    def system_overrides() -> dict[str, Any]:
        return {"kafka_partitions": PARTITIONS}

    @pytest.mark.real
    async def test_two_workers_share_the_post_stream_with_no_loss_or_double_effect(
        api: Api, system: Any
    ) -> None:
        first = system.services["fanout-worker"]
        platform = resolve_secrets(PlatformSettings(kafka_partitions=PARTITIONS))
        second = fanout_app.create_app(
            platform,
            FanoutSettings(),
            bus=make_bus(platform, client_id="fanout-worker-2"),
            in_process=system.services,
        )
        async with second.router.lifespan_context(second):

            async def shared() -> bool:
                mine, theirs = posts_partitions(first), posts_partitions(second)
                split = bool(mine and theirs) and not mine & theirs
                return split and mine | theirs == set(range(PARTITIONS))

            await eventually(shared, timeout=90, interval=0.2)
            owner = dict.fromkeys(posts_partitions(first), "first")
            owner |= dict.fromkeys(posts_partitions(second), "second")
            handled: dict[str, Counter[int]] = {"first": Counter(), "second": Counter()}
            record_posts(first, handled["first"])
            record_posts(second, handled["second"])

            # Authors until each member owns the partitions of at least two of them.
            authors: list[dict[str, Any]] = []

            def covered() -> bool:
                per_member = Counter(owner[partition_of(int(a["id"]))] for a in authors)
                return len(per_member) == 2 and min(per_member.values()) >= 2

            while not covered():
                assert len(authors) < 40, "the partitioner put every author on one member"
                authors.append(await api.signup(f"author{len(authors)}"))
            fans = [await api.signup(f"fan{i}") for i in range(4)]
            timelines = first.state.handlers.timelines
            for fan in fans:
                await timelines.open_for_rebuild(int(fan["id"]))  # a reader's built timeline
                for author in authors:
                    await follow(api, fan, author)

            # Synthetic posts (not in post-service's database, which a rebuild would read):
            # the authors' recent lists are built beforehand, so they take every post.
            for author in authors:
                await timelines.build_recent(int(author["id"]), [])
            # The stream as post-service's outbox relay publishes it, interleaved by author.
            ids = IdGenerator(901)
            events = [
                PostCreated(post_id=ids.next_id(), author_id=int(a["id"]))
                for _ in range(POSTS_PER_AUTHOR)
                for a in authors
            ]
            await system.bus.publish(
                [OutgoingMessage(e.topic, e.key(), Envelope.wrap(e).encode()) for e in events]
            )
            posts = {e.post_id for e in events}

            async def all_handled() -> bool:
                return set(handled["first"] | handled["second"]) >= posts

            await eventually(all_handled, timeout=60, interval=0.2)
            await asyncio.sleep(1.0)  # room for a late duplicate to show

        # Each post was handled by exactly one member, and each member handled some.
        both = handled["first"] + handled["second"]
        assert {p: both[p] for p in posts} == dict.fromkeys(posts, 1)
        assert handled["first"]
        assert handled["second"]
        for e in events:
            expected = "first" if e.post_id in handled["first"] else "second"
            assert owner[partition_of(e.author_id)] == expected
        # Every post is in every follower's timeline once, with nothing else but the sentinel.
        redis = timelines.redis
        for fan in fans:
            names = await redis.zrange(timeline_key(int(fan["id"])), 0, -1)
            assert sorted(names) == sorted([SENTINEL, *(member(p) for p in posts)])
        for author in authors:
            names = await redis.zrange(recent_key(int(author["id"])), 0, -1)
            own = {e.post_id for e in events if e.author_id == int(author["id"])}
            assert sorted(names) == sorted([SENTINEL, *(member(p) for p in own)])
