"""The peer ports' contract: the same cases on each HTTP adapter over the real services
(in this process, on this run's backends) and on the in-memory fakes the unit tier uses."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any, Protocol

import httpx
import pytest
from photogram_contracts.identity import Identity
from photogram_contracts.keys import post_cache_key
from photogram_contracts.peers import FeedCache, Followers, PostCatalog, UserDirectory
from photogram_contracts.schemas import AvatarRead, VariantRead
from sqlalchemy import update

from fakes import FakeFeedCache, FakeFollowers, FakePostCatalog, FakeUserDirectory
from helpers import Api, post_photo
from photogram_common.cursors import decode_cursor
from photogram_common.peer_clients import (
    HttpFeedCache,
    HttpFollowers,
    HttpPostCatalog,
    HttpUserDirectory,
)
from photogram_common.problems import Problem
from photogram_common.timeutil import utcnow

THRESHOLD = 3


class World(Protocol):
    """Users, follows and posts made the owning service's way, and its ports."""

    followers: Followers
    catalog: PostCatalog
    feed_cache: FeedCache
    directory: UserDirectory

    async def user(self, name: str) -> int: ...
    async def leave(self, user: int) -> None: ...
    async def follow(self, follower: int, followee: int) -> None: ...
    async def unfollow(self, follower: int, followee: int) -> None: ...
    async def post(self, author: int) -> int: ...
    async def delete(self, author: int, post_id: int) -> None: ...
    async def like(self, user: int, post_id: int) -> None: ...
    async def idle(self, user: int, days: int) -> None: ...
    async def forgotten(self, post_id: int) -> bool: ...


class FakeWorld:
    def __init__(self) -> None:
        self.followers = FakeFollowers(active_days=7, celebrity_threshold=THRESHOLD)
        self.catalog = FakePostCatalog()
        self.feed_cache = FakeFeedCache()
        self.directory = FakeUserDirectory()
        self._ids = itertools.count(1000)

    async def user(self, name: str) -> int:
        return self.directory.add(self.followers.add_user(next(self._ids)), name)

    async def leave(self, user: int) -> None:
        self.directory.remove(user)

    async def follow(self, follower: int, followee: int) -> None:
        self.followers.follow(follower, followee)

    async def unfollow(self, follower: int, followee: int) -> None:
        self.followers.unfollow(follower, followee)

    async def post(self, author: int) -> int:
        post_id = next(self._ids)
        return int(self.catalog.add(author, post_id, media_ids=[next(self._ids)]).post_id)

    async def delete(self, author: int, post_id: int) -> None:
        self.catalog.delete(post_id)

    async def like(self, user: int, post_id: int) -> None:
        self.catalog.like(user, post_id)

    async def idle(self, user: int, days: int) -> None:
        self.followers.last_active[user] = utcnow() - timedelta(days=days)

    async def forgotten(self, post_id: int) -> bool:
        return post_id in self.feed_cache.forgotten


class HttpWorld:
    def __init__(self, api: Api, system: Any) -> None:
        self.api, self.system = api, system
        peers = system.gateway.state.peers
        self.followers = HttpFollowers(peers.users)
        self.catalog = HttpPostCatalog(peers.posts)
        self.feed_cache = HttpFeedCache(peers.feed)
        self.directory = HttpUserDirectory(peers.users)
        self._users: dict[int, dict[str, Any]] = {}

    async def user(self, name: str) -> int:
        data = await self.api.signup(name)
        self._users[int(data["id"])] = data
        return int(data["id"])

    async def _call(self, method: str, path: str, user: int, json: Any = None) -> httpx.Response:
        headers = self._users[user]["headers"]
        response = await self.api.client.request(method, path, headers=headers, json=json)
        assert response.status_code < 300, response.text
        return response

    async def leave(self, user: int) -> None:
        await self._call("DELETE", "/api/users/me", user, {"password": "correct horse battery"})

    async def follow(self, follower: int, followee: int) -> None:
        await self._call("POST", f"/api/users/{followee}/follow", follower)

    async def unfollow(self, follower: int, followee: int) -> None:
        await self._call("DELETE", f"/api/users/{followee}/follow", follower)

    async def post(self, author: int) -> int:
        return int(await post_photo(self.api.client, self._users[author]))

    async def delete(self, author: int, post_id: int) -> None:
        await self._call("DELETE", f"/api/post/{post_id}", author)

    async def like(self, user: int, post_id: int) -> None:
        await self._call("POST", f"/api/post/{post_id}/like", user)

    async def idle(self, user: int, days: int) -> None:
        from user_service.models import users

        state = self.system.services["user-service"].state
        async with state.database.transaction() as session:
            await session.execute(
                update(users)
                .where(users.c.id == user)
                .values(last_active_at=utcnow() - timedelta(days=days))
            )

    async def forgotten(self, post_id: int) -> bool:
        redis = self.system.services["feed-service"].state.feed.timelines.redis
        return await redis.get(post_cache_key(post_id)) == ""


@pytest.fixture
def system_overrides() -> dict[str, Any]:
    return {"celebrity_threshold": THRESHOLD, "active_days": 7}


@pytest.fixture(params=["http", "fake"])
def world(request: pytest.FixtureRequest) -> World:
    """The system only for the HTTP adapters (a sync fixture: it asks for async ones)."""
    if request.param == "fake":
        return FakeWorld()
    return HttpWorld(request.getfixturevalue("api"), request.getfixturevalue("system"))


async def test_followers_come_in_ascending_pages_that_end_with_none(world: World) -> None:
    author = await world.user("author")
    fans = sorted([await world.user(f"fan{i}") for i in range(5)])
    for fan in fans:
        await world.follow(fan, author)
    first = await world.followers.page(author, after=0, limit=2)
    assert first.user_ids == fans[:2]
    assert first.next_after == fans[1]
    second = await world.followers.page(author, after=fans[1], limit=3)
    assert (second.user_ids, second.next_after) == (fans[2:], fans[4])
    last = await world.followers.page(author, after=fans[4], limit=3)
    assert (last.user_ids, last.next_after) == ([], None)
    whole = await world.followers.page(author, after=0, limit=10)
    assert (whole.user_ids, whole.next_after) == (fans, None)


async def test_an_idle_follower_is_left_out_unless_every_follower_is_asked(
    world: World,
) -> None:
    author = await world.user("author")
    active, idle = await world.user("active"), await world.user("idle")
    for fan in (active, idle):
        await world.follow(fan, author)
    await world.idle(idle, days=8)
    assert (await world.followers.page(author, after=0, limit=10)).user_ids == [active]
    everyone = await world.followers.page(author, after=0, limit=10, active_days=0)
    assert everyone.user_ids == sorted([active, idle])
    wider = await world.followers.page(author, after=0, limit=10, active_days=9)
    assert wider.user_ids == sorted([active, idle])


async def test_followees_carry_the_delivery_flag(world: World) -> None:
    reader = await world.user("reader")
    star, friend = await world.user("star"), await world.user("friend")
    for name in ("fan_a", "fan_b"):
        await world.follow(await world.user(name), star)
    assert not await world.followers.pulled(star)
    await world.follow(reader, star)  # the third follower: the threshold
    await world.follow(reader, friend)
    followees = await world.followers.followees(reader)
    found = {f.user_id: (f.followers_count, f.pulled) for f in followees}
    assert found == {star: (3, True), friend: (1, False)}
    assert await world.followers.pulled(star)
    assert not await world.followers.pulled(friend)
    assert await world.followers.followees(star) == []


async def test_an_author_below_the_band_is_pushed_again(world: World) -> None:
    star = await world.user("star")
    fans = [await world.user(f"fan{i}") for i in range(3)]
    for fan in fans:
        await world.follow(fan, star)
    assert await world.followers.pulled(star)
    await world.unfollow(fans[0], star)  # 2: the band's edge below a threshold of 3
    assert not await world.followers.pulled(star)


async def test_the_delivery_of_no_one_is_a_404(world: World) -> None:
    with pytest.raises(Problem) as refused:
        await world.followers.pulled(999_999_999)
    assert refused.value.status == 404


async def test_seen_is_accepted_for_a_reader(world: World) -> None:
    reader = await world.user("reader")
    await world.followers.seen(Identity(user_id=reader, username="reader"))
    author = await world.user("author")
    await world.follow(reader, author)
    await world.idle(reader, days=8)
    await world.followers.seen(Identity(user_id=reader, username="reader"))
    assert (await world.followers.page(author, after=0, limit=5)).user_ids == [reader]


async def test_newest_runs_newest_first_across_authors_and_pages_by_before(
    world: World,
) -> None:
    ana, bob, cat = await world.user("ana"), await world.user("bob"), await world.user("cat")
    posts = [await world.post(author) for author in (ana, bob, ana, cat, bob)]
    theirs = [p for p, a in zip(posts, (ana, bob, ana, cat, bob), strict=True) if a != cat]
    newest = theirs[::-1]
    assert await world.catalog.newest([ana, bob], limit=10) == newest
    assert await world.catalog.newest([ana, bob], limit=2) == newest[:2]
    assert await world.catalog.newest([ana, bob], limit=10, before=newest[1]) == newest[2:]
    assert await world.catalog.newest([], limit=5) == []


async def test_a_deleted_post_is_gone_from_newest_and_from_posts(world: World) -> None:
    ana = await world.user("ana")
    kept, gone = await world.post(ana), await world.post(ana)
    await world.delete(ana, gone)
    assert await world.catalog.newest([ana], limit=5) == [kept]
    found = await world.catalog.posts([gone, kept, 123_456_789])
    assert [int(p.post_id) for p in found] == [kept]
    assert found[0].user_id == str(ana)
    assert await world.catalog.posts([]) == []


async def test_a_newest_page_pages_by_its_cursor_with_counts_and_the_viewers_likes(
    world: World,
) -> None:
    ana, bob, cat = await world.user("ana"), await world.user("bob"), await world.user("cat")
    posts = [await world.post(author) for author in (ana, bob, ana, cat, bob)]
    gone = posts[2]
    await world.delete(ana, gone)
    await world.like(cat, posts[1])
    await world.like(ana, posts[1])
    await world.like(ana, posts[4])
    newest = [posts[4], posts[1], posts[0]]  # ana's and bob's, the deleted one left out

    first = await world.catalog.newest_page([ana, bob], limit=2, before=None, viewer_id=cat)
    assert [int(p.post_id) for p in first.items] == newest[:2]
    assert [(p.likes_count, p.comments_count) for p in first.items] == [(1, 0), (2, 0)]
    assert [p.viewer.liked if p.viewer else None for p in first.items] == [False, True]
    assert first.next_cursor is not None
    (before,) = decode_cursor(first.next_cursor, arity=1)
    rest = await world.catalog.newest_page([ana, bob], limit=2, before=before, viewer_id=cat)
    assert [int(p.post_id) for p in rest.items] == newest[2:]
    assert rest.next_cursor is None
    assert rest.items[0].author.user_id == str(ana)
    empty = await world.catalog.newest_page([], limit=5, before=None, viewer_id=cat)
    assert (empty.items, empty.next_cursor) == ([], None)


async def test_posts_come_in_the_order_asked(world: World) -> None:
    ana, bob = await world.user("ana"), await world.user("bob")
    first, second = await world.post(ana), await world.post(bob)
    found = await world.catalog.posts([second, first])
    assert [(int(p.post_id), int(p.author.user_id)) for p in found] == [(second, bob), (first, ana)]


async def test_holders_name_the_live_post_of_each_media_and_nothing_else(world: World) -> None:
    ana = await world.user("ana")
    kept, gone = await world.post(ana), await world.post(ana)
    kept_post, gone_post = await world.catalog.posts([kept, gone])
    kept_media = int(kept_post.media[0].media_id)
    gone_media = int(gone_post.media[0].media_id)
    assert await world.catalog.holders([kept_media, gone_media]) == {
        kept_media: kept,
        gone_media: gone,
    }
    await world.delete(ana, gone)
    # A deleted post holds nothing, and media no post holds are left out.
    assert await world.catalog.holders([gone_media, kept_media, 123_456_789]) == {kept_media: kept}
    assert await world.catalog.holders([]) == {}


async def test_an_unused_idempotency_key_has_no_earlier_use(world: World) -> None:
    ana = await world.user("ana")
    assert await world.catalog.earlier_use(Identity(user_id=ana, username="ana"), "k-1") is None


async def test_a_forgotten_post_is_known_as_deleted(world: World) -> None:
    ana = await world.user("ana")
    post = await world.post(ana)
    assert not await world.forgotten(post)
    await world.feed_cache.forget(post, by=Identity(user_id=ana, username="ana"))
    assert await world.forgotten(post)


def _identity(user: int) -> Identity:
    return Identity(user_id=user, username=f"user{user}")


async def test_the_directory_answers_in_the_order_asked_without_the_unknown(
    world: World,
) -> None:
    ana, bob, gone = await world.user("ana"), await world.user("bob"), await world.user("gone")
    await world.leave(gone)
    asked = [str(bob), "123456789", str(gone), str(ana)]
    found = await world.directory.batch(_identity(ana), asked)
    assert [(u.user_id, u.username) for u in found] == [(str(bob), "bob"), (str(ana), "ana")]
    assert found[0].avatar is None
    assert await world.directory.batch(_identity(ana), []) == []


async def test_a_recorded_avatar_is_shown_and_can_be_cleared(world: World) -> None:
    ana = await world.user("ana")
    square = VariantRead(url="/api/avatars/77/thumbnail.jpg", width=150, height=150)
    avatar = AvatarRead(thumbnail=square, small=square.model_copy(update={"width": 320}))
    me = await world.directory.set_avatar(_identity(ana), avatar)
    assert (me.user_id, me.avatar) == (str(ana), avatar)
    (shown,) = await world.directory.batch(_identity(ana), [str(ana)])
    assert shown.avatar == avatar
    cleared = await world.directory.set_avatar(_identity(ana), None)
    assert cleared.avatar is None
    assert (await world.directory.batch(_identity(ana), [str(ana)]))[0].avatar is None
