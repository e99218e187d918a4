"""Timelines in Redis sorted sets: the key layout and operations feed and fan-out share.

Members are post IDs in decimal and scores are the posts' creation times in Unix
milliseconds, negated (exact in a double, unlike a 64-bit ID): a list runs newest first,
so a fan-out's insert, which is almost always the newest post, lands at rank 0 and a trim
cuts the oldest off the end. In a listpack (the encoding of a full timeline here) that
made an insert ~3x cheaper for Redis than at the end of an oldest-first list, which
scans the whole list to find its place (docs/benchmarks.md (a)). Redis keeps
integer-looking members as integers in a listpack, which is why the IDs are not
zero-padded (a padded timeline takes 75% more memory). Within one millisecond Redis
orders members by their bytes, not numerically, so a page always reads whole
milliseconds and orders them itself: a post ID is then an exact cursor, however many
posts share a millisecond.

Every list (a home timeline, or an author's recent posts) holds a sentinel member with
score 0 (so the last rank) from the moment it is built. A missing key means "not built":
never built, expired for inactivity, or lost with Redis. Readers answer it with a rebuild
from the source of truth, never with an empty page; writers add only to built lists, so a
list is never a partial one that looks whole. The keys carry the layout's version
(`tl2:`, `rp2:`): lists of the earlier, oldest-first layout are never read and expire.

A home timeline keeps the newest `cap` posts, trimmed lazily: a push trims a timeline
only once it holds more than `cap + trim_slack` posts, and then back down to `cap` in one
ZREMRANGEBYRANK, so between two trims a timeline holds up to `trim_slack` more (older)
posts than the cap. Paging stays exact (trimming only ever drops the oldest posts); a
reader who pages to the very end may see those few extra posts. A rebuild (`fill`)
trims exactly. See docs/decisions.md, "Fan-out writes".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable, Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from photogram_contracts.keys import recent_key, timeline_key
from redis.asyncio import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from photogram_common.ids import id_to_unix_ms
from photogram_common.metrics import REDIS_DURATION, timed
from photogram_common.settings import PlatformSettings

SENTINEL = "0"
# Lists per script call, and script calls in flight per push (on one Redis), measured in
# bench/fanout.py: a call of CHUNK keys holds Redis for CHUNK inserts, ~9 ms into full
# listpack timelines, ~2 ms into skiplists (docs/benchmarks.md (a)).
CHUNK = 256
IN_FLIGHT = 2
# Posts per script call when one list takes many (unpacked onto Lua's stack).
MAX_PAIRS = 500
# A home timeline is trimmed once it exceeds cap + cap // TRIM_SLACK_DIVISOR posts: at the
# default cap, 408 posts and the sentinel still fit the 8 KB allocation of a 400-post
# listpack (409 do; at a cap of 800, 816 fit the 16 KB one), so the slack costs no memory
# there (docs/decisions.md).
TRIM_SLACK_DIVISOR = 50

# Trims a list of more than `cap` posts (the sentinel aside) to its newest `cap`. A list
# runs newest first by millisecond, but within one millisecond Redis orders members by
# their bytes, so oldest first: of the millisecond the cap cuts, the last ones stay.
_TRIM_FUNCTION = """
local function trim(key, cap)
  local pair = redis.call('ZRANGE', key, cap - 1, cap, 'WITHSCORES')
  local edge = pair[2]
  if pair[4] ~= edge then
    redis.call('ZREMRANGEBYRANK', key, cap, -2)  -- the cap falls between two milliseconds
    return
  end
  local newer = redis.call('ZCOUNT', key, '-inf', '(' .. edge)
  local cut = redis.call('ZCOUNT', key, edge, edge) - (cap - newer)
  redis.call('ZREMRANGEBYSCORE', key, '(' .. edge, '(0')
  if cut > 0 then redis.call('ZREMRANGEBYRANK', key, newer, newer + cut - 1) end
end
"""

# KEYS = lists; ARGV = cap, slack, then score, member pairs. Adds the pairs to every built
# list (a built list holds the sentinel; a missing key has ZCARD 0 and stays missing) and
# trims a list that holds more than cap + slack posts back down to its newest cap, the
# sentinel (score 0, the last rank) aside. Returns how many of the lists were built.
_ADD_IF_BUILT = (
    _TRIM_FUNCTION
    + """
local unpack = unpack or table.unpack
local cap = tonumber(ARGV[1])
local limit = cap + tonumber(ARGV[2])
local built = 0
for i = 1, #KEYS do
  local n = redis.call('ZCARD', KEYS[i])
  if n > 0 then
    built = built + 1
    n = n + redis.call('ZADD', KEYS[i], unpack(ARGV, 3))
    if n - 1 > limit then trim(KEYS[i], cap) end
  end
end
return built
"""
)

# KEYS = one list; ARGV = cap, TTL, then score, member pairs, oldest first. Marks the list
# built (the sentinel), adds the pairs, trims it to its newest cap posts and sets its TTL.
# Oldest first, each insert lands at rank 0 of a listpack: 800 of them cost Redis ~3 ms
# instead of ~9.5 ms newest first (each then scans to the end).
_FILL = (
    _TRIM_FUNCTION
    + """
local unpack = unpack or table.unpack
local cap = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], 0, '0')
for first = 3, #ARGV, 1000 do
  redis.call('ZADD', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
if redis.call('ZCARD', KEYS[1]) - 1 > cap then trim(KEYS[1], cap) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
"""
)

# KEYS = lists; ARGV = members. Removes the members from every list (none is created).
_REMOVE_ALL = """
local unpack = unpack or table.unpack
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], unpack(ARGV)) end
return #KEYS
"""


def member(post_id: int) -> str:
    return str(post_id)


def score(post_id: int) -> int:
    """A post's score in a list: its creation millisecond, negated (newest first)."""
    return -id_to_unix_ms(post_id)


def timeline_store_for(platform: PlatformSettings, redis: Any) -> TimelineStore:
    """The store as feed and fan-out both use it: a timeline expires before fan-out stops."""
    # A reader's last-active time lags their last read by a few minutes at most; an hour
    # of margin means a timeline expires before fan-out stops writing to it, never after.
    ttl = platform.active_days * 86400 - 3600
    return TimelineStore(redis, cap=platform.timeline_cap, ttl_seconds=ttl)


class TimelineStore:
    """Home timelines and per-author recent-post lists: capped, trimmed on write, built or not."""

    def __init__(
        self,
        redis: Any,
        *,
        cap: int = 400,
        recent_cap: int = 100,
        ttl_seconds: int = 6 * 86400,
        recent_ttl_seconds: int = 30 * 86400,
        trim_slack: int | None = None,
    ) -> None:
        self.redis = redis
        self.cap = cap
        self.recent_cap = recent_cap
        self.ttl_seconds = ttl_seconds
        self.recent_ttl_seconds = recent_ttl_seconds
        # How far past the cap a home timeline may grow before a push trims it (the module
        # docstring); recent lists are always trimmed exactly.
        self.trim_slack = cap // TRIM_SLACK_DIVISOR if trim_slack is None else trim_slack
        self._add_if_built = redis.register_script(_ADD_IF_BUILT)
        self._remove_all = redis.register_script(_REMOVE_ALL)
        self._fill = redis.register_script(_FILL)
        self._cluster = isinstance(redis, RedisCluster)
        self._loaded_on_cluster = False
        # On a plain Redis client (not fakeredis, not a cluster) script calls are packed by
        # hiredis: redis-py's asyncio client packs a command in Python, ~1 µs per key of a
        # call, about 40 % of the client's CPU per insert.
        self._packed = type(redis) is aioredis.Redis

    async def push(self, user_ids: Iterable[int], post_id: int) -> int:
        """Add one post to each built timeline; return how many took it.

        One script call per CHUNK timelines, IN_FLIGHT calls at a time (see `_each_built`).
        """
        keys = [timeline_key(u) for u in user_ids]
        pair: list[int | str] = [score(post_id), member(post_id)]
        return await self._each_built(keys, pair, self.cap, self.trim_slack)

    async def push_pages(self, pages: AsyncIterable[Sequence[int]], post_id: int) -> int:
        """`push` to pages of followers as they come: the next page is read while one is written."""
        pushed = 0
        writing: asyncio.Task[int] | None = None
        try:
            async for user_ids in pages:
                if writing is not None:
                    pushed += await writing
                writing = asyncio.ensure_future(self.push(user_ids, post_id))
            if writing is not None:
                pushed += await writing
                writing = None
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)
        return pushed

    async def push_posts(self, user_id: int, post_ids: Sequence[int]) -> None:
        """Add several posts to one built home timeline (a follow's backfill)."""
        key = timeline_key(user_id)
        for start in range(0, len(post_ids), MAX_PAIRS):
            pairs: list[int | str] = []
            for post_id in post_ids[start : start + MAX_PAIRS]:
                pairs += [score(post_id), member(post_id)]
            await self._each_built([key], pairs, self.cap, self.trim_slack)

    async def _each_built(
        self, keys: Sequence[str], pairs: Sequence[int | str], cap: int, slack: int
    ) -> int:
        """Run the add-if-built script over `keys`; return how many of them were built.

        On one Redis: a call per CHUNK keys, IN_FLIGHT calls at a time (on as many pooled
        connections), so the client packs the next call while Redis runs one. On Redis
        Cluster a script's keys must share a slot: a call per slot, CHUNK calls at a time
        (hash-tagged timelines rarely share one, so it is about a call per key).
        """
        if not keys:
            return 0
        args = [cap, slack, *pairs]
        if self._cluster:
            return await self._per_slot(self._add_if_built, keys, args)
        if len(keys) <= CHUNK:
            return int(await self._run(self._add_if_built, keys, args))
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def call(part: Sequence[str]) -> int:
            async with gate:
                return int(await self._run(self._add_if_built, part, args))

        parts = [keys[start : start + CHUNK] for start in range(0, len(keys), CHUNK)]
        return sum(await asyncio.gather(*(call(part) for part in parts)))

    async def _run(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA of a registered script: packed by hiredis on a pooled connection when the
        client is a plain Redis one, else through redis-py's Script (which does the same in
        Python). A NOSCRIPT reply (a restarted or flushed Redis) loads it and calls again."""
        with timed(REDIS_DURATION, op="timeline_script"):
            if not self._packed:
                return await script(keys=keys, args=args)
            command = hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
            try:
                return await self._send(command)
            except NoScriptError:
                await self.redis.script_load(script.script)
                return await self._send(command)

    async def _send(self, command: bytes) -> Any:
        """Send one packed command on a pooled connection and read its reply.

        redis-py's connection disconnects itself when a send or a read fails or is
        cancelled, so a connection goes back to the pool with no reply left unread.
        """
        pool = self.redis.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(command)
            return await connection.read_response()
        finally:
            await pool.release(connection)

    async def _per_slot(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> int:
        """A script over keys of many slots on Redis Cluster: one call per slot."""
        if not self._loaded_on_cluster:
            # Loaded on every primary first: else each of the concurrent calls below meets
            # NOSCRIPT and loads it itself, a connection per call per node.
            for known in (self._add_if_built, self._remove_all):
                await self.redis.script_load(known.script)
            self._loaded_on_cluster = True
        by_slot: dict[int, list[str]] = {}
        for key in keys:
            by_slot.setdefault(key_slot(key.encode()), []).append(key)
        groups = list(by_slot.values())
        total = 0
        for start in range(0, len(groups), CHUNK):
            replies = await asyncio.gather(
                *(script(keys=group, args=args) for group in groups[start : start + CHUNK])
            )
            total += sum(int(r) for r in replies)
        return total

    async def remove(self, user_ids: Iterable[int], post_ids: Sequence[int]) -> None:
        """Remove posts from home timelines: a script call per CHUNK timelines."""
        names = [member(p) for p in post_ids]
        keys = [timeline_key(u) for u in user_ids]
        if not names or not keys:
            return
        for start in range(0, len(names), MAX_PAIRS):
            part = names[start : start + MAX_PAIRS]
            if self._cluster:
                await self._per_slot(self._remove_all, keys, part)
                continue
            for first in range(0, len(keys), CHUNK):
                await self._run(self._remove_all, keys[first : first + CHUNK], part)

    async def is_built(self, user_id: int) -> bool:
        return bool(await self.redis.exists(timeline_key(user_id)))

    async def open_for_rebuild(self, user_id: int) -> None:
        """Mark the timeline built (empty) so pushes during a rebuild land in it."""
        key = timeline_key(user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {SENTINEL: 0})
            pipe.expire(key, self.ttl_seconds)
            await pipe.execute()

    async def fill(self, user_id: int, post_ids: Sequence[int]) -> None:
        """Add a rebuild's posts to an opened timeline, keeping the newest up to the cap."""
        await self._fill_list(timeline_key(user_id), post_ids, self.cap, self.ttl_seconds)

    async def _fill_list(self, key: str, post_ids: Sequence[int], cap: int, ttl: int) -> None:
        """Build a list in one script call: the sentinel, the newest `cap` posts, the TTL."""
        args: list[int | str] = [cap, ttl]
        for post_id in sorted(set(post_ids))[-cap:]:  # oldest first (see _FILL)
            args += [score(post_id), member(post_id)]
        await self._run(self._fill, [key], args)

    async def touch(self, user_id: int) -> None:
        """Keep a read timeline alive for another TTL."""
        await self.redis.expire(timeline_key(user_id), self.ttl_seconds)

    async def page(self, user_id: int, *, before: int | None, limit: int) -> list[int]:
        """Post IDs of the home timeline older than `before`, newest first."""
        return await older_than(self.redis, timeline_key(user_id), before=before, limit=limit)

    async def add_recent(self, author_id: int, post_id: int) -> bool:
        """Add a post to its author's built recent list; False when the list is not built."""
        pair: list[int | str] = [score(post_id), member(post_id)]
        return bool(await self._each_built([recent_key(author_id)], pair, self.recent_cap, 0))

    async def build_recent(self, author_id: int, post_ids: Sequence[int]) -> None:
        """(Re)build an author's recent list from the source of truth."""
        key = recent_key(author_id)
        await self._fill_list(key, post_ids, self.recent_cap, self.recent_ttl_seconds)

    async def remove_recent(self, author_id: int, post_id: int) -> None:
        await self.redis.zrem(recent_key(author_id), member(post_id))

    async def unbuilt_recent(self, author_ids: Sequence[int]) -> list[int]:
        """The authors whose recent list is not built."""
        if not author_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for author_id in author_ids:
                pipe.exists(recent_key(author_id))
            found = await pipe.execute()
        return [a for a, present in zip(author_ids, found, strict=True) if not present]

    async def recent_many(
        self, author_ids: Sequence[int], *, before: int | None, limit: int
    ) -> list[int]:
        """Recent posts of several authors older than `before`, merged newest first."""
        return await self.home_page(None, author_ids, before=before, limit=limit)

    async def home_page(
        self, user_id: int | None, pulled: Sequence[int], *, before: int | None, limit: int
    ) -> list[int]:
        """A home timeline merged with pulled authors' recent lists, in one round trip."""
        keys = [recent_key(a) for a in pulled]
        if user_id is not None:
            keys.append(timeline_key(user_id))
        merged: set[int] = set()
        for found in await older_than_many(self.redis, keys, before=before, limit=limit):
            merged.update(found)  # a post can be in both after a threshold crossing
        return sorted(merged, reverse=True)[:limit]


async def older_than(redis: Any, key: str, *, before: int | None, limit: int) -> list[int]:
    """Up to `limit` post IDs in the list strictly older than `before`, newest first."""
    return (await older_than_many(redis, [key], before=before, limit=limit))[0]


async def older_than_many(
    redis: Any, keys: Sequence[str], *, before: int | None, limit: int
) -> list[list[int]]:
    """For each list, up to `limit` IDs strictly older than `before`, newest first.

    Pages are read by whole milliseconds and ordered here (see the module docstring): the
    cursor's own millisecond, then a window of `limit + 1` below it. When the window is
    full, its last millisecond may be cut; it is left out if what remains fills the page,
    else read whole in a second round trip (rare: it takes posts sharing a millisecond).
    """
    if not keys:
        return []
    # Scores are negated milliseconds: older than the cursor's millisecond is a higher score.
    own = None if before is None else -id_to_unix_ms(before)
    lower = "-inf" if own is None else f"({own}"
    with timed(REDIS_DURATION, op="timeline_page"):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                if own is not None:
                    pipe.zrangebyscore(key, own, own)
                pipe.zrangebyscore(key, lower, "(0", start=0, num=limit + 1, withscores=True)
            replies = await pipe.execute()
    step = 1 if own is None else 2
    results: list[list[int]] = []
    cut: list[tuple[int, str, float]] = []
    for index, key in enumerate(keys):
        own_ms, window = (
            replies[index * step : (index + 1) * step] if step == 2 else ([], replies[index])
        )
        found = [p for p in map(int, own_ms) if before is not None and p < before]
        if len(window) > limit:
            last = window[-1][1]
            found += [int(name) for name, value in window if value < last]
            if len(found) < limit:
                cut.append((index, key, last))
        else:
            found += [int(name) for name, _ in window]
        results.append(found)
    if cut:
        async with redis.pipeline(transaction=False) as pipe:
            for _, key, last in cut:
                pipe.zrangebyscore(key, last, last)
            whole = await pipe.execute()
        for (index, _, _), names in zip(cut, whole, strict=True):
            results[index].extend(map(int, names))
    return [sorted(found, reverse=True)[:limit] for found in results]
