"""The fan-out's rules on fakes of its peers and an in-memory Redis: no backend, no server.

Each case feeds `FanoutHandlers` the events user- and post-service would publish for a
change made in the fakes (which keep those services' rules), then reads the timelines.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta

import fakeredis
import pytest
from photogram_contracts.events import FollowCreated, FollowDeleted, PostCreated, PostDeleted

from fakes import FakeFeedCache, FakeFollowers, FakePostCatalog
from fanout_worker.service import FanoutHandlers
from photogram_common.follows import FollowSets
from photogram_common.ids import EPOCH_MS, IdGenerator
from photogram_common.timelines import TimelineStore

THRESHOLD = 6


@dataclass
class World:
    handlers: FanoutHandlers
    users: FakeFollowers
    posts: FakePostCatalog
    feed: FakeFeedCache
    timelines: TimelineStore
    follows: FollowSets
    ids: IdGenerator

    def user(self, user_id: int, *, inactive_days: int = 0) -> int:
        return self.users.add_user(user_id, inactive_days=inactive_days)

    async def post(self, author: int) -> int:
        post_id = self.ids.next_id()
        self.posts.add(author, post_id)
        await self.handlers.handle(PostCreated(post_id=post_id, author_id=author))
        return post_id

    async def delete(self, author: int, post_id: int) -> None:
        self.posts.delete(post_id)
        await self.handlers.handle(PostDeleted(post_id=post_id, author_id=author))

    async def follow(self, follower: int, followee: int) -> None:
        crossed = self.users.follow(follower, followee)
        await self.handlers.handle(self._event(FollowCreated, follower, followee, crossed))

    async def unfollow(self, follower: int, followee: int) -> None:
        crossed = self.users.unfollow(follower, followee)
        await self.handlers.handle(self._event(FollowDeleted, follower, followee, crossed))

    def _event(
        self,
        kind: type[FollowCreated] | type[FollowDeleted],
        follower: int,
        followee: int,
        crossed: str | None,
    ) -> FollowCreated | FollowDeleted:
        return kind(
            follower_id=follower,
            followee_id=followee,
            followee_followers_count=len(self.users.followers_of[followee]),
            followee_pulled=self.users.pulled_flags[followee],
            followee_crossed=crossed,  # type: ignore[arg-type]
        )

    async def timeline(self, reader: int) -> list[int] | None:
        if not await self.timelines.is_built(reader):
            return None
        return await self.timelines.page(reader, before=None, limit=100)

    async def reader(self, user_id: int) -> int:
        """A reader whose timeline and follow sets are built (as a first read would)."""
        self.user(user_id)
        await self.timelines.open_for_rebuild(user_id)
        await self.follows.build(user_id, followees=[], pulled=[])
        return user_id


@pytest.fixture
def world() -> World:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    timelines = TimelineStore(redis, cap=10, recent_cap=5, ttl_seconds=3600)
    follows = FollowSets(redis, ttl_seconds=3600)
    users = FakeFollowers(active_days=7, celebrity_threshold=THRESHOLD)
    posts, feed = FakePostCatalog(), FakeFeedCache()
    handlers = FanoutHandlers(
        timelines=timelines,
        follows=follows,
        users=users,
        posts=posts,
        feed=feed,
        celebrity_threshold=THRESHOLD,
        page_size=2,  # several pages even for a few followers
        backfill_posts=3,
    )
    clock = itertools.count(EPOCH_MS + 10_000_000, 1000)  # a second between posts
    ids = IdGenerator(2, clock=lambda: next(clock))
    return World(handlers, users, posts, feed, timelines, follows, ids)


async def test_a_post_reaches_every_built_timeline_of_its_followers_page_after_page(
    world: World,
) -> None:
    author = world.user(1)
    fans = [await world.reader(i) for i in range(10, 15)]
    for fan in fans:
        await world.follow(fan, author)
    post = await world.post(author)
    assert [await world.timeline(f) for f in fans] == [[post]] * 5


async def test_the_author_sees_their_own_post(world: World) -> None:
    author = await world.reader(1)
    post = await world.post(author)
    assert await world.timeline(author) == [post]


async def test_a_timeline_not_built_is_not_written(world: World) -> None:
    author, cold = world.user(1), world.user(10)
    await world.follow(cold, author)
    await world.post(author)
    assert await world.timeline(cold) is None  # built whole on the next read, never partial


async def test_an_inactive_follower_is_skipped(world: World) -> None:
    author = world.user(1)
    active = await world.reader(10)
    idle = await world.reader(11)
    world.users.last_active[idle] -= timedelta(days=8)
    for fan in (active, idle):
        await world.follow(fan, author)
    post = await world.post(author)
    assert await world.timeline(active) == [post]
    assert await world.timeline(idle) == []


async def test_a_pulled_author_is_not_pushed_to_followers(world: World) -> None:
    star = world.user(1)
    fans = [await world.reader(i) for i in range(10, 10 + THRESHOLD)]
    for fan in fans:
        await world.follow(fan, star)
    assert world.users.pulled_flags[star]
    post = await world.post(star)
    assert [await world.timeline(f) for f in fans] == [[]] * THRESHOLD
    # Their recent list holds it for the readers' merge.
    assert await world.timelines.recent_many([star], before=None, limit=5) == [post]


async def test_a_deleted_post_leaves_every_timeline_and_the_feed_cache(world: World) -> None:
    author = await world.reader(1)
    fans = [await world.reader(i) for i in range(10, 13)]
    for fan in fans:
        await world.follow(fan, author)
    kept, gone = await world.post(author), await world.post(author)
    await world.delete(author, gone)
    assert [await world.timeline(u) for u in [author, *fans]] == [[kept]] * 4
    assert world.feed.forgotten == [gone]


async def test_a_deleted_post_leaves_an_idle_followers_timeline_too(world: World) -> None:
    author = world.user(1)
    idle = await world.reader(10)
    await world.follow(idle, author)
    post = await world.post(author)
    world.users.last_active[idle] -= timedelta(days=8)
    await world.delete(author, post)
    assert await world.timeline(idle) == []


async def test_a_follow_backfills_the_followees_newest_posts(world: World) -> None:
    author = world.user(1)
    posts = [await world.post(author) for _ in range(5)]
    reader = await world.reader(10)
    await world.follow(reader, author)
    assert await world.timeline(reader) == posts[::-1][:3]  # backfill_posts=3


async def test_an_unfollow_takes_the_followees_posts_out(world: World) -> None:
    author, other = world.user(1), world.user(2)
    reader = await world.reader(10)
    await world.follow(reader, author)
    await world.follow(reader, other)
    theirs, kept = await world.post(author), await world.post(other)
    await world.unfollow(reader, author)
    assert await world.timeline(reader) == [kept]
    assert theirs not in (await world.timeline(reader) or [])
    assert await world.follows.followees(reader) == [other]


async def test_following_a_pulled_author_adds_them_to_the_readers_pulled_set(
    world: World,
) -> None:
    star = world.user(1)
    for fan in range(20, 20 + THRESHOLD):
        world.user(fan)
        await world.follow(fan, star)
    older = await world.post(star)
    reader = await world.reader(10)
    await world.follow(reader, star)
    assert await world.follows.pulled(reader) == [star]
    assert await world.timeline(reader) == []  # merged at read time, not backfilled
    assert await world.timelines.recent_many([star], before=None, limit=5) == [older]


async def test_crossing_up_makes_every_follower_pull_the_author(world: World) -> None:
    star = world.user(1)
    fans = [await world.reader(i) for i in range(10, 10 + THRESHOLD)]
    for fan in fans[:-1]:
        await world.follow(fan, star)
    assert [await world.follows.pulled(f) for f in fans[:-1]] == [[]] * (THRESHOLD - 1)
    await world.follow(fans[-1], star)  # the threshold: crossed up
    assert [await world.follows.pulled(f) for f in fans] == [[star]] * THRESHOLD


async def test_crossing_down_pushes_what_reads_showed_and_stops_pulling(world: World) -> None:
    star = world.user(1)
    fans = [await world.reader(i) for i in range(10, 10 + THRESHOLD)]
    for fan in fans:
        await world.follow(fan, star)
    shown = await world.post(star)
    assert await world.timeline(fans[1]) == []
    await world.unfollow(fans[0], star)  # below the band: pushed again
    assert not world.users.pulled_flags[star]
    assert [await world.timeline(f) for f in fans[1:]] == [[shown]] * (THRESHOLD - 1)
    assert [await world.follows.pulled(f) for f in fans[1:]] == [[]] * (THRESHOLD - 1)
    newer = await world.post(star)
    assert await world.timeline(fans[1]) == [newer, shown]


async def test_a_redelivered_event_changes_nothing(world: World) -> None:
    author = world.user(1)
    fan = await world.reader(10)
    await world.follow(fan, author)
    post = await world.post(author)
    event = PostCreated(post_id=post, author_id=author)
    await world.handlers.handle(event)
    await world.handlers.handle(event)
    assert await world.timeline(fan) == [post]
    await world.delete(author, post)
    await world.handlers.handle(PostDeleted(post_id=post, author_id=author))
    assert await world.timeline(fan) == []
