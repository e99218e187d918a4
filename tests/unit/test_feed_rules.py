"""The feed read's rules on fakes of its peers and an in-memory Redis: no backend, no server.

The fakes keep user- and post-service's state; the timelines are written the way the
fan-out writes them (its own rules are in test_fanout_rules.py).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import fakeredis
import orjson
import pytest
from photogram_contracts.identity import Identity
from photogram_contracts.keys import counts_key, liked_key, rebuild_lock_key, timeline_key
from photogram_contracts.peers import Followee
from redis.exceptions import ConnectionError as RedisConnectionError

from fakes import FakeFollowers, FakePostCatalog
from feed_service.engagement import PageEngagement
from feed_service.hydration import PostBodies
from feed_service.page_read import PageRead
from feed_service.service import FeedService, PullSlots, RebuildSlots
from photogram_common import deadlines
from photogram_common.engagement_cache import EngagementCache, parse_counts
from photogram_common.follows import FollowSets
from photogram_common.ids import EPOCH_MS, IdGenerator
from photogram_common.problems import Problem
from photogram_common.timelines import TimelineStore

THRESHOLD = 3
READER = 10


@dataclass
class World:
    feed: FeedService
    users: FakeFollowers
    posts: FakePostCatalog
    timelines: TimelineStore
    follows: FollowSets
    ids: IdGenerator

    def user(self, user_id: int) -> int:
        return self.users.add_user(user_id)

    def follow(self, follower: int, followee: int) -> None:
        self.users.follow(follower, followee)

    async def post(self, author: int, *, pushed_to: tuple[int, ...] = ()) -> int:
        """A post, added to the author's recent list and pushed to these built timelines."""
        post_id = self.ids.next_id()
        self.posts.add(author, post_id, username=f"user{author}")
        if await self.timelines.add_recent(author, post_id) is False:
            await self.timelines.build_recent(
                author, await self.posts.newest([author], limit=self.timelines.recent_cap)
            )
        await self.timelines.push([author, *pushed_to], post_id)
        return post_id

    async def page(
        self, reader: int = READER, *, cursor: str | None = None, limit: int = 20
    ) -> tuple[list[int], str | None]:
        raw = await self.feed.page(
            Identity(user_id=reader, username=f"user{reader}"), cursor=cursor, limit=limit
        )
        body = orjson.loads(raw)
        return [int(p["post_id"]) for p in body["items"]], body["next_cursor"]

    async def every_page(self, reader: int = READER, *, limit: int) -> list[list[int]]:
        pages, cursor = [], None
        while True:
            ids, cursor = await self.page(reader, cursor=cursor, limit=limit)
            pages.append(ids)
            if cursor is None:
                return pages


@pytest.fixture
def world() -> World:
    server = fakeredis.FakeServer()
    text = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
    raw = fakeredis.FakeAsyncRedis(server=server, decode_responses=False)
    timelines = TimelineStore(text, cap=50, recent_cap=10, ttl_seconds=3600)
    follows = FollowSets(text, ttl_seconds=3600)
    users = FakeFollowers(active_days=7, celebrity_threshold=THRESHOLD)
    posts = FakePostCatalog()
    feed = FeedService(
        timelines=timelines,
        follows=follows,
        reads=PageRead(
            raw, ttl_seconds=3600, refresh_below_seconds=1800, seen_seconds=60, single_node=True
        ),
        bodies=PostBodies(redis=raw, posts=posts, ttl_seconds=3600),
        engagement=PageEngagement(
            cache=EngagementCache(raw, counts_ttl_seconds=3600, liked_ttl_seconds=3600),
            posts=posts,
        ),
        users=users,
        posts=posts,
        rebuild_wait_seconds=0.5,
    )
    clock = itertools.count(EPOCH_MS + 10_000_000, 1000)  # a second between posts
    ids = IdGenerator(2, clock=lambda: next(clock))
    world = World(feed, users, posts, timelines, follows, ids)
    world.user(READER)
    return world


async def test_a_first_read_rebuilds_the_timeline_from_the_source_of_truth(
    world: World,
) -> None:
    ana, bob, stranger = world.user(1), world.user(2), world.user(3)
    world.follow(READER, ana)
    world.follow(READER, bob)
    posts = [await world.post(a) for a in (ana, stranger, bob, READER, ana)]
    assert not await world.timelines.is_built(READER)
    ids, cursor = await world.page()
    assert ids == [posts[4], posts[3], posts[2], posts[0]]  # the stranger's post is not there
    assert cursor is None
    assert await world.timelines.is_built(READER)


async def test_pages_follow_the_cursor_exactly(world: World) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    posts = [await world.post(ana) for _ in range(7)]
    assert await world.every_page(limit=3) == [posts[6:3:-1], posts[3:0:-1], posts[:1]]


async def test_a_pushed_post_is_read_from_the_timeline_without_the_source_of_truth(
    world: World,
) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    await world.page()  # built
    post = await world.post(ana, pushed_to=(READER,))
    assert (await world.page())[0] == [post]  # its body fetched once, and cached
    world.posts.live.clear()
    assert (await world.page())[0] == [post]  # from the timeline and the cached body alone


async def test_a_pulled_authors_posts_are_merged_at_read_time(world: World) -> None:
    star, friend = world.user(1), world.user(2)
    for fan in (20, 21, READER):
        world.user(fan)
        world.follow(fan, star)
    world.follow(READER, friend)
    assert world.users.pulled_flags[star]
    older = await world.post(star)
    mine = await world.post(friend)
    await world.page()  # built: the timeline holds the friend's post, the pulled set the star
    assert await world.follows.pulled(READER) == [star]
    newer = await world.post(star)  # never pushed to anyone
    assert (await world.page())[0] == [newer, mine, older]
    assert await world.every_page(limit=1) == [[newer], [mine], [older]]


async def test_a_deleted_post_is_gone_at_once_though_still_in_timelines(world: World) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    kept = await world.post(ana)
    gone = await world.post(ana)
    assert (await world.page())[0] == [gone, kept]
    world.posts.delete(gone)
    await world.feed.bodies.forget(gone)  # what the gateway and the fan-out ask for
    assert (await world.page())[0] == [kept]


async def test_an_unfollowed_authors_posts_leave_the_page_before_the_fanout_runs(
    world: World,
) -> None:
    ana, bob = world.user(1), world.user(2)
    world.follow(READER, ana)
    world.follow(READER, bob)
    theirs, kept = await world.post(ana), await world.post(bob)
    assert (await world.page())[0] == [kept, theirs]
    world.users.unfollow(READER, ana)
    await world.follows.unfollow(READER, ana)  # the follow sets change first
    assert (await world.page())[0] == [kept]


async def test_a_lost_timeline_is_rebuilt_and_reads_the_same(world: World) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    posts = [await world.post(ana) for _ in range(4)]
    first = await world.every_page(limit=3)
    await world.timelines.redis.flushall()
    assert await world.every_page(limit=3) == first == [posts[:0:-1], posts[:1]]


async def test_a_read_marks_the_reader_active(world: World) -> None:
    await world.page()
    await world.feed.drain()
    assert world.users.seen_by == [READER]
    await world.page()
    await world.feed.drain()
    assert world.users.seen_by == [READER]  # throttled: once per period


async def test_without_redis_the_page_comes_from_the_databases(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    posts = [await world.post(ana) for _ in range(3)]
    redis_pages = await world.every_page(limit=2)

    async def unreachable(*_: object, **__: object) -> None:
        raise RedisConnectionError("Redis is gone")

    monkeypatch.setattr(world.feed.reads, "slice", unreachable)
    assert await world.every_page(limit=2) == redis_pages == [posts[:0:-1], posts[:1]]


async def test_a_timeline_being_rebuilt_elsewhere_is_waited_for_then_a_503(
    world: World,
) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    await world.post(ana)
    lock = rebuild_lock_key(timeline_key(READER))
    await world.timelines.redis.set(lock, "1", ex=60)  # another process holds the rebuild
    with pytest.raises(Problem) as refused:
        await world.page()
    assert refused.value.status == 503
    assert refused.value.headers == {"Retry-After": "1"}


async def test_with_every_rebuild_slot_taken_the_page_is_pulled_from_the_owners(
    world: World,
) -> None:
    star, ana = world.user(1), world.user(2)
    for fan in (20, 21, READER):
        world.user(fan)
        world.follow(fan, star)
    world.follow(READER, ana)
    posts = [await world.post(author) for author in (ana, star, READER, ana, star)]
    world.posts.like(READER, posts[3])
    rebuilt = await world.every_page(limit=2)
    liked = [p["viewer"] for p in await items(world)]
    assert liked.count({"liked": True}) == 1
    await world.timelines.redis.flushall()
    world.feed.rebuilds, world.feed.pulls = RebuildSlots(1), PullSlots(1)
    async with world.feed.rebuilds.take():  # another reader's rebuild holds the one slot
        assert (
            await world.every_page(limit=2) == rebuilt == [posts[:2:-1], posts[2:0:-1], posts[:1]]
        )
        assert [p["viewer"] for p in await items(world)] == liked
        assert not await world.timelines.is_built(READER)  # a later read rebuilds it
        async with world.feed.pulls.take():  # and the pull reads are bounded too
            with pytest.raises(Problem) as refused:
                await world.page()
    assert (refused.value.status, refused.value.headers) == (503, {"Retry-After": "1"})
    # Once the slot is free the pulled reader's timeline is rebuilt in the background.
    for _ in range(100):
        if await world.timelines.is_built(READER):
            break
        await asyncio.sleep(0.02)
    assert await world.timelines.is_built(READER)
    assert await world.every_page(limit=2) == rebuilt
    await world.feed.drain()


async def test_a_pulled_read_marks_the_reader_active_and_its_owed_rebuild_outlives_its_deadline(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    post = await world.post(ana)
    world.feed.rebuilds, world.feed.pulls = RebuildSlots(1), PullSlots(1)
    asked_under: list[float | None] = []  # the deadline each call for the followees had left
    followees = world.users.followees

    async def recording(user_id: int) -> list[Followee]:
        asked_under.append(deadlines.remaining())
        return await followees(user_id)

    monkeypatch.setattr(world.users, "followees", recording)
    async with world.feed.rebuilds.take():
        with deadlines.within(0.01):
            assert await world.page() == ([post], None)  # pulled, under the read's deadline
        await asyncio.sleep(0.02)  # that deadline passes before a slot is free
    for _ in range(100):
        if await world.timelines.is_built(READER):
            break
        await asyncio.sleep(0.02)
    await world.feed.drain()
    assert await world.timelines.is_built(READER)
    assert asked_under[0] is not None
    assert asked_under[-1] is None  # the owed rebuild's: under no deadline
    assert await world.timelines.redis.exists(liked_key(READER))  # built with it
    assert world.users.seen_by == [READER]


async def test_without_pull_reads_a_rebuild_past_the_bound_is_a_503(world: World) -> None:
    world.feed.rebuilds, world.feed.pulls = RebuildSlots(1), None
    async with world.feed.rebuilds.take():
        with pytest.raises(Problem) as refused:
            await world.page()
    assert refused.value.status == 503


async def items(world: World, reader: int = READER) -> list[dict[str, object]]:
    raw = await world.feed.page(
        Identity(user_id=reader, username=f"user{reader}"), cursor=None, limit=20
    )
    found: list[dict[str, object]] = orjson.loads(raw)["items"]
    return found


async def test_counts_and_the_readers_likes_are_joined_into_every_post(world: World) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    liked, other = await world.post(ana), await world.post(ana)
    world.posts.like(READER, liked)
    world.posts.like(2, liked)
    world.posts.like(2, other)
    first = await items(world)
    assert [(p["post_id"], p["likes_count"], p["comments_count"], p["viewer"]) for p in first] == [
        (str(other), 1, 0, {"liked": False}),
        (str(liked), 2, 0, {"liked": True}),
    ]
    # The miss cached the counts; the next read takes them (and events) from Redis alone.
    cache = world.feed.engagement.cache
    assert await cache.set_counts(other, version=9, likes=40, comments=3)
    assert not await cache.set_counts(other, version=8, likes=1, comments=1)  # older: kept out
    await cache.liked(READER, other, liked=True)
    second = await items(world)
    assert [(p["likes_count"], p["comments_count"], p["viewer"]) for p in second] == [
        (40, 3, {"liked": True}),
        (2, 0, {"liked": True}),
    ]
    assert set(second[0]) - set(first[0]) == set()  # the same fields, each once


async def test_many_counts_are_stored_at_once_and_the_higher_version_still_wins(
    world: World,
) -> None:
    cache = world.feed.engagement.cache
    assert await cache.set_counts(11, version=5, likes=50, comments=5)
    await cache.set_many_counts([(11, 4, 1, 1), (12, 1, 2, 3), (13, 7, 0, 9)])
    stored = [await world.timelines.redis.get(counts_key(p)) for p in (11, 12, 13)]
    assert [parse_counts(s) for s in stored] == [(5, 50, 5), (1, 2, 3), (7, 0, 9)]
    await cache.set_many_counts([])  # nothing to write: no round trip, no error


async def test_the_liked_set_is_built_on_a_first_read_and_misses_nothing(world: World) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    post = await world.post(ana)
    world.posts.like(READER, post)
    await items(world)
    redis = world.feed.engagement.cache.redis
    assert await redis.sismember(liked_key(READER), str(post))
    await redis.delete(liked_key(READER), counts_key(post))  # lost: rebuilt, not empty
    assert (await items(world))[0]["viewer"] == {"liked": True}


async def test_likes_older_than_the_liked_sets_floor_are_asked_for(world: World) -> None:
    ana = world.user(1)
    world.follow(READER, ana)
    posts = [await world.post(ana) for _ in range(3)]
    for post in posts:
        world.posts.like(READER, post)
    world.posts.liked_cap = 1  # the set holds only the newest liked post
    found = await items(world)
    assert [p["viewer"] for p in found] == [{"liked": True}] * 3
    assert await world.feed.engagement.cache.redis.scard(liked_key(READER)) == 2  # and "0"


async def test_a_wait_for_a_free_slot_ends_when_one_is_released() -> None:
    slots = RebuildSlots(1)
    await asyncio.wait_for(slots.wait_until_free(), 1)  # one is free: at once
    released = asyncio.Event()

    async def hold() -> None:
        async with slots.take():
            await released.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(slots.wait_until_free())
    await asyncio.sleep(0.05)
    assert slots.full
    assert not waiter.done()
    released.set()
    await asyncio.wait_for(waiter, 1)
    assert not slots.full
    await holder
