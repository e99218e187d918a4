"""The timeline store's contract, on fakeredis and (in the real mode) Redis: the same code."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import fakeredis
import pytest
from photogram_contracts.keys import timeline_key

import photogram_common.timelines as timelines
from backends import REAL, REAL_REDIS, flush_redis, real_redis
from photogram_common.ids import EPOCH_MS, IdGenerator
from photogram_common.timelines import CHUNK, MAX_PAIRS, SENTINEL, TimelineStore, member, score

STORES = ["fakeredis", *([REAL_REDIS] if REAL else [])]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TimelineStore]:
    if request.param == "fakeredis":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    else:
        await flush_redis()
        client = real_redis(decode_responses=True)
    try:
        yield TimelineStore(client, cap=10, recent_cap=5, ttl_seconds=3600)
    finally:
        await client.aclose()


async def every_page(store: TimelineStore, limit: int) -> list[int]:
    """Page through user 1's timeline with the given limit, following the cursor."""
    seen: list[int] = []
    before = None
    while True:
        page = await store.page(1, before=before, limit=limit)
        seen += page
        if len(page) < limit:
            return seen
        before = page[-1]


def ids_in_one_millisecond(count: int, *, worker: int = 1) -> list[int]:
    """IDs made within one millisecond (a frozen clock), as a busy worker would."""
    generator = IdGenerator(worker, clock=lambda: EPOCH_MS + 1_000_000)
    return [generator.next_id() for _ in range(count)]


async def test_push_reaches_only_built_timelines(store: TimelineStore) -> None:
    await store.open_for_rebuild(1)
    post = ids_in_one_millisecond(1)[0]
    assert await store.push([1, 2, 3], post) == 1
    assert await store.page(1, before=None, limit=10) == [post]
    assert not await store.is_built(2)  # never a partial list that looks whole


async def test_timelines_are_trimmed_to_the_cap_keeping_the_newest(store: TimelineStore) -> None:
    await store.open_for_rebuild(1)
    posts = ids_in_one_millisecond(25)
    for post in posts:
        await store.push([1], post)
    assert await store.page(1, before=None, limit=100) == sorted(posts, reverse=True)[:10]
    assert await store.redis.zscore(timeline_key(1), SENTINEL) == 0  # the sentinel stays


async def test_a_list_runs_newest_first_with_the_sentinel_last(store: TimelineStore) -> None:
    """The layout a fan-out's insert is cheap in: the newest post at rank 0 (where a push
    lands), the oldest next to the sentinel (where a trim cuts)."""
    clock = iter([EPOCH_MS + 5, EPOCH_MS + 7, EPOCH_MS + 9])
    gen = IdGenerator(3, clock=lambda: next(clock))
    posts = [gen.next_id() for _ in range(3)]  # in three milliseconds
    await store.open_for_rebuild(1)
    await store.fill(1, posts[:2])
    await store.push([1], posts[2])
    names = await store.redis.zrange(timeline_key(1), 0, -1)
    assert names == [*(member(p) for p in sorted(posts, reverse=True)), SENTINEL]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 10])
async def test_cursor_paging_is_exact_within_one_millisecond(
    store: TimelineStore, limit: int
) -> None:
    """Many posts share a score: paging by (score, member) still returns each exactly once."""
    posts = ids_in_one_millisecond(6, worker=1) + ids_in_one_millisecond(4, worker=2)
    await store.open_for_rebuild(1)
    await store.fill(1, posts)
    assert await every_page(store, limit) == sorted(posts, reverse=True)


async def test_scores_are_exact_milliseconds_for_64_bit_ids(store: TimelineStore) -> None:
    post = IdGenerator(1023).next_id()
    assert post > 2**53  # a 64-bit ID as a double would be rounded
    await store.open_for_rebuild(1)
    await store.push([1], post)
    assert await store.redis.zscore(timeline_key(1), member(post)) == score(post)
    assert await store.page(1, before=None, limit=5) == [post]
    assert await store.page(1, before=post, limit=5) == []


async def test_pushes_are_idempotent_and_removal_works(store: TimelineStore) -> None:
    await store.open_for_rebuild(1)
    await store.open_for_rebuild(2)
    first, second = ids_in_one_millisecond(2)
    for _ in range(3):
        await store.push([1, 2], first)
    await store.push([1, 2], second)
    assert await store.page(1, before=None, limit=10) == [second, first]
    await store.remove([1, 2], [first])
    await store.remove([1, 2], [first])
    assert await store.page(2, before=None, limit=10) == [second]


async def test_fill_after_open_keeps_posts_pushed_meanwhile(store: TimelineStore) -> None:
    old, pushed_during_rebuild = ids_in_one_millisecond(2)
    await store.open_for_rebuild(1)
    await store.push([1], pushed_during_rebuild)
    await store.fill(1, [old])
    assert await store.page(1, before=None, limit=10) == [pushed_during_rebuild, old]
    assert 0 < await store.redis.ttl(timeline_key(1)) <= 3600


async def test_recent_lists_are_built_capped_and_merged(store: TimelineStore) -> None:
    a_posts = ids_in_one_millisecond(7, worker=1)
    b_posts = ids_in_one_millisecond(3, worker=2)
    assert not await store.add_recent(10, a_posts[0])  # not built: refused
    assert await store.unbuilt_recent([10, 20]) == [10, 20]
    await store.build_recent(10, a_posts[:1])
    for post in a_posts[1:]:
        assert await store.add_recent(10, post)
    await store.build_recent(20, b_posts)
    assert await store.unbuilt_recent([10, 20]) == []
    assert (
        await store.recent_many([10], before=None, limit=100) == sorted(a_posts, reverse=True)[:5]
    )
    merged = await store.recent_many([10, 20], before=None, limit=4)
    assert merged == sorted(a_posts[2:] + b_posts, reverse=True)[:4]
    await store.remove_recent(10, a_posts[-1])
    assert a_posts[-1] not in await store.recent_many([10], before=None, limit=100)


@pytest.mark.parametrize("limit", [1, 2, 3, 4])
async def test_paging_is_numeric_when_member_bytes_disagree(
    store: TimelineStore, limit: int
) -> None:
    """In the millisecond where IDs reach 10**18, byte order and numeric order differ."""
    millisecond = 10**18 >> 22
    base = millisecond << 22
    posts = [p for p in (base + i * 100_000 for i in range(42)) if p >> 22 == millisecond]
    straddling = [p for p in posts if p < 10**18][-3:] + [p for p in posts if p >= 10**18][:3]
    assert len({len(str(p)) for p in straddling}) == 2
    await store.open_for_rebuild(1)
    await store.fill(1, straddling)
    assert await every_page(store, limit) == sorted(straddling, reverse=True)


async def test_lazy_trimming_holds_at_most_cap_plus_slack_and_pages_exactly(
    store: TimelineStore,
) -> None:
    """With a trim slack, a timeline grows to cap + slack, then drops back to the newest cap."""
    lazy = TimelineStore(store.redis, cap=10, trim_slack=4, ttl_seconds=3600)
    await lazy.open_for_rebuild(1)
    posts = ids_in_one_millisecond(40)
    for count, post in enumerate(posts, 1):
        assert await lazy.push([1], post) == 1
        held = count if count <= 14 else 10 + (count - 15) % 5
        assert await every_page(lazy, 3) == sorted(posts[:count], reverse=True)[:held]
    assert await lazy.redis.zscore(timeline_key(1), SENTINEL) == 0


async def test_default_slack_is_a_fraction_of_the_cap(store: TimelineStore) -> None:
    assert TimelineStore(store.redis, cap=800).trim_slack == 16
    assert TimelineStore(store.redis).trim_slack == 8  # the default cap, 400
    assert store.trim_slack == 0  # a cap of 10 is trimmed exactly


async def test_push_and_remove_reach_every_built_timeline_across_chunks(
    store: TimelineStore,
) -> None:
    users = list(range(1, 2 * CHUNK + 50))
    built = set(users[::3])
    for user in built:
        await store.open_for_rebuild(user)
    first, second = ids_in_one_millisecond(2)
    assert await store.push(users, first) == len(built)
    assert await store.push(users, second) == len(built)  # and again: still one entry each
    async with store.redis.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.zrange(timeline_key(user), 0, -1)
        found = await pipe.execute()
    for user, names in zip(users, found, strict=True):
        expected = sorted([SENTINEL, member(first), member(second)]) if user in built else []
        assert sorted(names) == expected
    await store.remove(users, [first])
    async with store.redis.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.zrange(timeline_key(user), 0, -1)
        found = await pipe.execute()
    for user, names in zip(users, found, strict=True):
        assert sorted(names) == (sorted([SENTINEL, member(second)]) if user in built else [])


async def test_many_posts_to_one_timeline_keep_the_newest_cap(store: TimelineStore) -> None:
    posts = ids_in_one_millisecond(MAX_PAIRS + 30, worker=3)
    await store.push_posts(1, posts)  # not built: nothing
    assert not await store.is_built(1)
    await store.open_for_rebuild(1)
    await store.push_posts(1, posts)
    assert await every_page(store, 4) == sorted(posts, reverse=True)[:10]
    await store.remove([1], posts)
    assert await store.page(1, before=None, limit=10) == []
    assert await store.is_built(1)  # the sentinel stays


async def test_push_pages_writes_every_page(store: TimelineStore) -> None:
    for user in range(1, 601, 2):
        await store.open_for_rebuild(user)
    post = ids_in_one_millisecond(1)[0]

    async def pages() -> AsyncIterator[list[int]]:
        for start in range(1, 601, 100):
            yield list(range(start, start + 100))

    assert await store.push_pages(pages(), post) == 300
    assert await store.page(599, before=None, limit=5) == [post]
    assert await store.page(600, before=None, limit=5) == []


async def test_push_pages_fails_as_the_page_source_fails(store: TimelineStore) -> None:
    await store.open_for_rebuild(1)
    post = ids_in_one_millisecond(1)[0]

    async def pages() -> AsyncIterator[list[int]]:
        yield [1]
        raise ConnectionError("user-service went away")

    with pytest.raises(ConnectionError):
        await store.push_pages(pages(), post)
    # The page read before the failure may or may not have been written; a retry of the
    # whole event is idempotent either way.
    await store.push_pages(pages_of([[1], [2]]), post)
    assert await store.page(1, before=None, limit=5) == [post]


async def pages_of(pages: list[list[int]]) -> AsyncIterator[list[int]]:
    for page in pages:
        yield page


async def test_pushes_load_their_scripts_when_redis_does_not_know_them(
    store: TimelineStore,
) -> None:
    """As after a Redis restart. SCRIPT FLUSH would say it plainer, but it is server-wide
    and the real Redis is shared: scripts of a text never sent before stand in for it."""
    fresh = f"\n-- {uuid.uuid4().hex}"
    store._add_if_built = store.redis.register_script(timelines._ADD_IF_BUILT + fresh)
    store._remove_all = store.redis.register_script(timelines._REMOVE_ALL + fresh)
    await store.open_for_rebuild(1)
    first, second = ids_in_one_millisecond(2)
    assert await store.push([1], first) == 1
    assert await store.push([1, 2], second) == 1
    await store.remove([1], [first])
    assert await store.page(1, before=None, limit=5) == [second]


async def test_a_cancelled_push_leaves_no_reply_behind(store: TimelineStore) -> None:
    users = list(range(1, 3 * CHUNK))
    for user in users:
        await store.open_for_rebuild(user)
    first, second = ids_in_one_millisecond(2)
    for spins in range(6):
        pushing = asyncio.ensure_future(store.push(users, first))
        for _ in range(spins):
            await asyncio.sleep(0)
        pushing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pushing
        # A connection left with an unread reply would answer this with the old one.
        assert await store.push([1], second) == 1
        assert await store.push([10**6], second) == 0
