"""The feed's one-round-trip page read, on fakeredis and (in the real mode) Redis.

Both ways of reading run on each adapter: the whole page in one script (a single Redis)
and the reader's slot in the script with the rest in a pipeline (as on Redis Cluster).
They must page exactly like the timeline store, merge pulled authors, and say which
list is not built.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import fakeredis
import pytest
from photogram_contracts.keys import (
    counts_key,
    liked_floor_key,
    liked_key,
    post_cache_key,
    rebuild_lock_key,
    timeline_key,
)

from backends import REAL, REAL_REDIS, REDIS_CLUSTER, flush_redis, real_redis
from feed_service.page_read import UNKNOWN, NotBuilt, PageRead
from photogram_common.follows import FollowSets
from photogram_common.ids import EPOCH_MS, IdGenerator
from photogram_common.timelines import SENTINEL, TimelineStore

ADAPTERS = ["fakeredis", *([REAL_REDIS] if REAL else [])]
READER, STAR, OTHER = 1, 500, 600


@dataclass
class Lists:
    timelines: TimelineStore
    follows: FollowSets
    read: PageRead
    raw: object


# A Redis Cluster refuses the one-script read (it reads keys of other slots than the
# reader's): there only the split read runs, as feed-service reads on a cluster.
@pytest.fixture(
    params=[
        (a, single)
        for a in ADAPTERS
        for single in (True, False)
        if not (single and a == REAL_REDIS and REDIS_CLUSTER)
    ],
    ids=lambda p: f"{p[0]}-{'script' if p[1] else 'split'}",
)
async def lists(request: pytest.FixtureRequest) -> AsyncIterator[Lists]:
    adapter, single = request.param
    if adapter == "fakeredis":
        server = fakeredis.FakeServer()
        text = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
        raw = fakeredis.FakeAsyncRedis(server=server, decode_responses=False)
    else:
        await flush_redis()
        text = real_redis(decode_responses=True)
        raw = real_redis(decode_responses=False)
    try:
        yield Lists(
            timelines=TimelineStore(text, cap=100, recent_cap=50, ttl_seconds=3600),
            follows=FollowSets(text, ttl_seconds=3600),
            read=PageRead(
                raw,
                ttl_seconds=3600,
                refresh_below_seconds=1800,
                seen_seconds=60,
                single_node=single,
            ),
            raw=raw,
        )
    finally:
        await text.aclose()
        await raw.aclose()


def ids(count: int, *, worker: int, ms_step: int) -> list[int]:
    """Time-ordered IDs, `ms_step` milliseconds apart (0: all in one millisecond)."""
    clock = {"ms": EPOCH_MS + 5_000_000}

    def now() -> int:
        clock["ms"] += ms_step
        return clock["ms"]

    generator = IdGenerator(worker, clock=now)
    return [generator.next_id() for _ in range(count)]


async def build(lists: Lists, pushed: list[int], pulled: dict[int, list[int]]) -> None:
    await lists.raw.sadd(liked_key(READER), SENTINEL)  # type: ignore[attr-defined]
    await lists.timelines.open_for_rebuild(READER)
    await lists.timelines.fill(READER, pushed)
    await lists.follows.build(READER, followees=[2, 3, 4, *pulled], pulled=pulled)
    for author, posts in pulled.items():
        await lists.timelines.build_recent(author, posts)


async def every_page(lists: Lists, want: int) -> list[int]:
    seen: list[int] = []
    before = None
    while True:
        part = await lists.read.slice(READER, before=before, want=want)
        page = part.ids[:want]
        seen += page
        if len(part.ids) <= want:
            return seen
        before = page[-1]


@pytest.mark.parametrize("want", [1, 3, 7, 20])
async def test_paging_merges_pulled_authors_exactly_once_in_order(lists: Lists, want: int) -> None:
    pushed = ids(12, worker=1, ms_step=1) + ids(9, worker=2, ms_step=0)
    star = ids(10, worker=3, ms_step=2)
    other = ids(4, worker=4, ms_step=0)
    await build(lists, pushed, {STAR: star, OTHER: other})
    # A post both pushed and pulled (after a threshold crossing) shows once.
    await lists.timelines.push_posts(READER, star[:2])
    assert await every_page(lists, want) == sorted({*pushed, *star, *other}, reverse=True)


async def test_the_page_carries_the_cached_bodies_and_none_for_a_miss(lists: Lists) -> None:
    posts = ids(3, worker=1, ms_step=1)
    await build(lists, posts, {})
    body = b'{"post_id":"x","user_id":"2"}'
    await lists.raw.set(post_cache_key(posts[2]), body)  # type: ignore[attr-defined]
    await lists.raw.set(post_cache_key(posts[1]), b"")  # type: ignore[attr-defined]
    part = await lists.read.slice(READER, before=None, want=3)
    assert part.ids == sorted(posts, reverse=True)
    assert part.bodies == [body, b"", None]


async def test_the_page_carries_counts_and_the_readers_likes(lists: Lists) -> None:
    posts = ids(3, worker=1, ms_step=1)  # oldest first
    await build(lists, posts, {})
    await lists.raw.set(counts_key(posts[2]), b"4 10 2")  # type: ignore[attr-defined]
    await lists.raw.sadd(liked_key(READER), str(posts[2]), str(posts[0]))  # type: ignore[attr-defined]
    part = await lists.read.slice(READER, before=None, want=3)
    assert part.counts == [b"4 10 2", None, None]
    assert part.liked == [1, 0, 1]
    # Likes of posts older than the set's floor are not known from it.
    await lists.raw.set(liked_floor_key(READER), str(posts[1]))  # type: ignore[attr-defined]
    part = await lists.read.slice(READER, before=None, want=3)
    assert part.liked == [1, 0, UNKNOWN]


async def test_each_unbuilt_list_is_named(lists: Lists) -> None:
    with pytest.raises(NotBuilt) as missing:
        await lists.read.slice(READER, before=None, want=5)
    assert missing.value.what == "timeline"
    await lists.timelines.open_for_rebuild(READER)
    with pytest.raises(NotBuilt) as missing:
        await lists.read.slice(READER, before=None, want=5)
    assert missing.value.what == "follows"
    await lists.follows.build(READER, followees=[STAR], pulled=[STAR])
    with pytest.raises(NotBuilt) as missing:
        await lists.read.slice(READER, before=None, want=5)
    assert missing.value.what == "liked"
    await lists.raw.sadd(liked_key(READER), SENTINEL)  # type: ignore[attr-defined]
    with pytest.raises(NotBuilt) as missing:
        await lists.read.slice(READER, before=None, want=5)
    assert (missing.value.what, missing.value.authors) == ("recent", [STAR])
    await lists.timelines.build_recent(STAR, [])
    assert (await lists.read.slice(READER, before=None, want=5)).ids == []


async def test_a_timeline_being_rebuilt_is_not_read(lists: Lists) -> None:
    await build(lists, ids(2, worker=1, ms_step=1), {})
    await lists.raw.set(rebuild_lock_key(timeline_key(READER)), 1)  # type: ignore[attr-defined]
    with pytest.raises(NotBuilt):
        await lists.read.slice(READER, before=None, want=5)


async def test_the_last_active_throttle_is_due_once(lists: Lists) -> None:
    await build(lists, [], {})
    first = await lists.read.slice(READER, before=None, want=5)
    second = await lists.read.slice(READER, before=None, want=5)
    assert (first.seen_due, second.seen_due) == (True, False)


async def test_follow_sets_change_only_when_built(lists: Lists) -> None:
    await lists.follows.follow(READER, STAR, pulled=True)
    assert await lists.follows.pulled(READER) is None
    await lists.follows.build(READER, followees=[2], pulled=[])
    await lists.follows.follow(READER, STAR, pulled=True)
    await lists.follows.follow(READER, OTHER, pulled=False)
    await lists.follows.add_pulled([READER, 2], 7)
    assert await lists.follows.pulled(READER) == [7, STAR]
    assert await lists.follows.followees(READER) == [2, STAR, OTHER]
    assert await lists.follows.pulled(2) is None
    await lists.follows.unfollow(READER, STAR)
    await lists.follows.remove_pulled([READER], 7)
    assert await lists.follows.pulled(READER) == []
    assert await lists.follows.followees(READER) == [2, OTHER]
    assert await lists.follows.followed(READER, [READER, 2, STAR, OTHER]) == {READER, 2, OTHER}


async def test_posts_of_authors_no_longer_followed_are_left_out(lists: Lists) -> None:
    posts = ids(3, worker=1, ms_step=1)
    await build(lists, posts, {})
    for post, author in zip(posts, (2, 9, READER), strict=True):
        body = b'{"post_id":"%d","user_id":"%d","media":[{"user_id":"2"}]}' % (post, author)
        await lists.raw.set(post_cache_key(post), body)  # type: ignore[attr-defined]
    part = await lists.read.slice(READER, before=None, want=3)
    assert part.ids == sorted(posts, reverse=True)
    newest, middle, oldest = part.bodies
    assert newest is not None
    assert b'"user_id":"%d"' % READER in newest
    assert middle == b""  # author 9 is not followed
    assert oldest is not None
    assert oldest.startswith(b'{"post_id":"%d","user_id":"2"' % posts[0])
