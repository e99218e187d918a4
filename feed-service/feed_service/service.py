"""The home feed: the pushed timeline merged with pulled celebrity posts, as page bytes.

In steady state a page is one Redis round trip (`page_read`): no call to another service
and no SQL. A list the read finds unbuilt (the timeline, the reader's pulled set, a pulled
author's recent list) is rebuilt from the source of truth, then the read runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from photogram_contracts.identity import Identity
from photogram_contracts.keys import liked_key, rebuild_lock_key, seen_key, timeline_key
from photogram_contracts.peers import Followers, PostCatalog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from feed_service.engagement import PageEngagement, with_engagement
from feed_service.hydration import PostBodies, cached_body, page_json
from feed_service.page_read import NotBuilt, PageRead, Slice
from photogram_common import deadlines
from photogram_common.cursors import decode_cursor, encode_cursor
from photogram_common.follows import FollowSets
from photogram_common.metrics import (
    PULLED_MERGES,
    PULLED_PAGES,
    TIMELINE_REBUILD_DURATION,
    TIMELINE_REBUILDS,
    count,
    observe,
)
from photogram_common.problems import Problem
from photogram_common.timelines import TimelineStore

log = logging.getLogger(__name__)

REBUILD_LOCK_SECONDS = 60
WAIT_STEP_SECONDS = 0.02


class SlotsFull(Problem):
    """Every slot of a `Slots` bound is taken: a fast 503 with Retry-After."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail, title="Service unavailable", headers={"Retry-After": "1"})


class Slots:
    """A bound on a costly kind of work one process runs at once (0: none); past it the
    work is refused at once (`SlotsFull`) instead of joining a queue in which each one
    slows every other."""

    refusal = "Feeds are being rebuilt; try again shortly."

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._freed = asyncio.Event()

    @property
    def full(self) -> bool:
        return bool(self.limit) and self.running >= self.limit

    def refuse_if_full(self) -> None:
        """Raise `SlotsFull` now if no slot is free (before work that would need one)."""
        if self.full:
            raise SlotsFull(self.refusal)

    async def wait_until_free(self) -> None:
        """Return once a slot is free (at once if one is): woken when one is released."""
        while self.full:
            self._freed.clear()
            await self._freed.wait()

    @asynccontextmanager
    async def take(self) -> AsyncIterator[None]:
        self.refuse_if_full()
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._freed.set()


class RebuildSlots(Slots):
    """The timeline rebuilds one process runs at once.

    A rebuild reads the source of truth (~50 ms of CPU over the services, PostgreSQL and
    Redis: the reader's followees and their newest posts up to the timeline's cap); after
    a lost Redis every reader needs one (docs/benchmarks.md (e)).
    """


class PullSlots(Slots):
    """The reads one process serves by the pull query while every rebuild slot is taken:
    one page from the owners (the followees, their newest page of posts, those posts),
    several times cheaper than a rebuild, so a lost Redis leaves the feed readable."""


@dataclass(frozen=True)
class Followees:
    pushed: list[int]
    pulled: list[int]


@dataclass
class FeedService:
    timelines: TimelineStore
    follows: FollowSets
    reads: PageRead
    bodies: PostBodies
    engagement: PageEngagement
    users: Followers
    posts: PostCatalog
    rebuild_wait_seconds: float = 5.0
    rebuilds: RebuildSlots = field(default_factory=lambda: RebuildSlots(0))
    # None: a read whose rebuild finds every slot taken is refused (503) instead.
    pulls: PullSlots | None = None
    # Readers whose page was pulled while every rebuild slot was taken, in the order they
    # came: their timelines are rebuilt in the background as slots free up, each once, so
    # the timelines come back at the rate the slots allow while the reads are pulled.
    owed_limit: int = 10_000
    _owed: dict[int, None] = field(default_factory=dict)
    _repaying: asyncio.Task[None] | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def page(self, caller: Identity, *, cursor: str | None, limit: int) -> bytes:
        """One page of the caller's feed as JSON bytes."""
        before = decode_cursor(cursor, arity=1)[0] if cursor else None
        try:
            try:
                return await self._page_from_redis(caller, before=before, limit=limit)
            except SlotsFull:
                if self.pulls is None:
                    raise
                # Every rebuild slot is taken: this page comes from the owners instead,
                # and the reader is owed a rebuild in the background (_owe).
                async with self.pulls.take():
                    count(PULLED_PAGES)
                    page = await self._page_from_databases(caller, before=before, limit=limit)
                self._owe(caller.user_id)
                self._in_background(self._seen_if_due(caller))
                return page
        # RedisClusterException: a Redis Cluster none of whose nodes answers (or a slot no
        # node serves); it is not a RedisError.
        except (RedisConnectionError, RedisTimeoutError, RedisClusterException) as exc:
            log.warning("redis unreachable: feed read from the databases", exc_info=exc)
            return await self._page_from_databases(caller, before=before, limit=limit)

    async def _page_from_redis(self, caller: Identity, *, before: int | None, limit: int) -> bytes:
        bodies: list[bytes] = []
        next_before: int | None = before
        more = True
        merged = 0

        async def followed(authors: list[int]) -> set[int]:
            return await self.follows.followed(caller.user_id, authors)

        # Deleted posts drop out with their bodies; read on until the page is full or done.
        while more and len(bodies) < limit:
            want = limit - len(bodies)
            part = await self._slice(caller, before=next_before, want=want)
            merged = max(merged, part.pulled)
            more = len(part.ids) > want
            page_ids = part.ids[:want]
            if page_ids:
                next_before = page_ids[-1]
            kept = await self.bodies.complete(
                page_ids, part.bodies[: len(page_ids)], followed=followed
            )
            bodies.extend(
                await self.engagement.join(
                    caller.user_id,
                    kept,
                    counts=dict(zip(page_ids, part.counts, strict=False)),
                    liked=dict(zip(page_ids, part.liked, strict=False)),
                )
            )
        observe(PULLED_MERGES, merged)
        return page_json(bodies, encode_cursor(next_before) if more else None)

    async def _page_from_databases(
        self, caller: Identity, *, before: int | None, limit: int
    ) -> bytes:
        """The pull query through the owners (Redis unreachable, or every rebuild slot
        taken): the same page in two calls, the followees and post-service's page of their
        newest posts with its counts and the reader's likes; Redis is not touched."""
        followees = await self.followees(caller.user_id)
        authors = [caller.user_id, *followees.pushed, *followees.pulled]
        found = await self.posts.newest_page(
            authors, limit=limit, before=before, viewer_id=caller.user_id
        )
        bodies = [
            with_engagement(
                cached_body(post),
                likes=post.likes_count,
                comments=post.comments_count,
                liked=post.viewer is not None and post.viewer.liked,
            )
            for post in found.items
        ]
        return page_json(bodies, found.next_cursor)

    async def _slice(self, caller: Identity, *, before: int | None, want: int) -> Slice:
        deadline = asyncio.get_running_loop().time() + self.rebuild_wait_seconds
        while True:
            try:
                part = await self.reads.slice(caller.user_id, before=before, want=want)
            except NotBuilt as missing:
                if asyncio.get_running_loop().time() > deadline:
                    raise Problem(
                        503,
                        "The feed is being rebuilt; try again shortly.",
                        title="Service unavailable",
                        headers={"Retry-After": "1"},
                    ) from missing
                await self._build(caller.user_id, missing)
                continue
            if part.seen_due:
                self._in_background(self._mark_seen(caller))
            return part

    async def _build(self, user_id: int, missing: NotBuilt) -> None:
        if missing.what == "timeline":
            await self._rebuild_timeline(user_id)
        elif missing.what == "follows":
            await self._build_follows(user_id, await self.followees(user_id))
        elif missing.what == "liked":
            await self._build_liked(user_id)
        else:
            await self._build_recent(missing.authors)

    async def followees(self, user_id: int) -> Followees:
        pushed: list[int] = []
        pulled: list[int] = []
        for followee in await self.users.followees(user_id):
            # user-service's flag, not the count: it has hysteresis (docs/decisions.md).
            (pulled if followee.pulled else pushed).append(followee.user_id)
        return Followees(pushed=pushed, pulled=pulled)

    async def rebuild(self, user_id: int) -> bool:
        """Rebuild the user's timeline and follow sets from the source of truth now, in
        place of what Redis holds (photogram-admin rebuild-feeds); False when a reader's
        rebuild of it was under way (that one stands)."""
        return await self._rebuild_timeline(user_id, replace=True)

    async def _rebuild_timeline(self, user_id: int, *, replace: bool = False) -> bool:
        """Rebuild a timeline once; other readers of it wait (the read sees the lock) and
        take no rebuild slot: only the lock's holder does the work."""
        redis = self.timelines.redis
        lock = rebuild_lock_key(timeline_key(user_id))
        # With no slot free, refuse before taking the lock: a refused read then costs no
        # lock round trips (after a lost Redis most reads are refused or pulled).
        self.rebuilds.refuse_if_full()
        if not await redis.set(lock, 1, nx=True, ex=REBUILD_LOCK_SECONDS):
            await asyncio.sleep(WAIT_STEP_SECONDS)
            return False
        started = time.perf_counter()
        try:
            async with self.rebuilds.take():
                if replace:
                    # A post fanned out before the open is in the source of truth read after it.
                    await redis.delete(timeline_key(user_id))
                # Open first, so posts fanned out while we read the source of truth land too.
                await self.timelines.open_for_rebuild(user_id)
                try:
                    followees = await self.followees(user_id)
                    await self._build_follows(user_id, followees)
                    newest = await self._newest([user_id, *followees.pushed], self.timelines.cap)
                    await self.timelines.fill(user_id, newest)
                except BaseException:
                    # Never leave an opened, unfilled timeline behind: it would pass as built.
                    await redis.delete(timeline_key(user_id))
                    raise
        finally:
            await redis.delete(lock)
        count(TIMELINE_REBUILDS)
        observe(TIMELINE_REBUILD_DURATION, time.perf_counter() - started)
        log.info(
            "timeline rebuilt",
            extra={"user_id": user_id, "posts": len(newest), "pushed": len(followees.pushed)},
        )
        return True

    async def _build_follows(self, user_id: int, followees: Followees) -> None:
        await self.follows.build(
            user_id, followees=[*followees.pushed, *followees.pulled], pulled=followees.pulled
        )

    async def _build_liked(self, user_id: int) -> None:
        """The reader's liked set from post-service: opened first, so likes made while it
        is read land in it; never left opened and unfilled (it would pass as built)."""
        cache = self.engagement.cache
        await cache.open_liked(user_id)
        try:
            post_ids, complete = await self.posts.liked(user_id)
            await cache.fill_liked(user_id, post_ids, complete=complete)
        except BaseException:
            await cache.forget_liked(user_id)
            raise

    async def _build_recent(self, authors: list[int]) -> None:
        """Rebuild the recent lists of pulled authors that Redis does not hold."""

        async def one(author_id: int) -> None:
            recent = await self._newest([author_id], self.timelines.recent_cap)
            await self.timelines.build_recent(author_id, recent)

        await asyncio.gather(*(one(a) for a in authors))

    async def _newest(
        self, authors: list[int], limit: int, *, before: int | None = None
    ) -> list[int]:
        return await self.posts.newest(authors, limit=limit, before=before)

    async def _mark_seen(self, caller: Identity) -> None:
        """Refresh last-active in user-service (it drives fan-out); the read does not wait."""
        try:
            await self.users.seen(caller)
        except Problem:
            # Let the next read try again rather than wait out the throttle.
            await self.timelines.redis.delete(seen_key(caller.user_id))
            log.warning("could not record a reader as active", extra={"user_id": caller.user_id})

    async def _seen_if_due(self, caller: Identity) -> None:
        """A pulled read marks the reader active too (the page script does on the others),
        throttled by the same key: fan-out writes only to active readers' timelines."""
        due = await self.timelines.redis.set(
            seen_key(caller.user_id), 1, nx=True, ex=self.reads.seen_seconds
        )
        if due:
            await self._mark_seen(caller)

    def _owe(self, user_id: int) -> None:
        """Rebuild this reader's timeline once a slot is free (beyond `owed_limit` readers
        owed, the reader's own next read tries again)."""
        if len(self._owed) < self.owed_limit:
            self._owed[user_id] = None
        if self._repaying is None or self._repaying.done():
            self._repaying = asyncio.create_task(self._repay())

    async def _repay(self) -> None:
        """Rebuild the owed timelines, oldest first, as many at once as there are slots
        (each waits for a free one: the readers' own rebuilds take them too). Begun by a
        read, it outlives it: not under that read's deadline, which would fail every
        peer call once passed."""
        with deadlines.none():
            await asyncio.gather(*(self._repay_one_by_one() for _ in range(self.rebuilds.limit)))

    async def _repay_one_by_one(self) -> None:
        while self._owed:
            user_id = next(iter(self._owed))
            del self._owed[user_id]
            while True:
                await self.rebuilds.wait_until_free()
                try:
                    if not await self.timelines.is_built(user_id):
                        await self._rebuild_timeline(user_id)
                        # And the liked set, which the pulled read did not build either:
                        # the reader's next read then needs nothing from the owners.
                        if not await self.engagement.cache.redis.exists(liked_key(user_id)):
                            await self._build_liked(user_id)
                except SlotsFull:
                    continue  # taken meanwhile: wait for the next free slot
                except Exception as exc:  # in the background: the reader's next read retries
                    log.warning(
                        "background rebuild failed", extra={"user_id": user_id}, exc_info=exc
                    )
                break

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work (at shutdown); owed rebuilds not begun are dropped
        (each reader's next read rebuilds their timeline)."""
        self._owed.clear()
        if self._repaying is not None:
            self._repaying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repaying
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
