"""Posts' counts and readers' likes in Redis, as the feed joins them into a page.

`pe:{post}` holds a post's counts as `b"<version> <likes> <comments>"`, written by the
fanout-worker from like and comment events and by feed-service on a miss. Both write
through one script that keeps the higher version, so the newest counts stay whatever the
order in which the writes arrive (an event redelivered late, a miss filled from a read
that began before a like). It shares the post's hash tag with the post's cached body.

`lk:{reader}` is the set of posts the reader likes, built from post-service on the
reader's first read (holding the sentinel "0" from then on, like a timeline) and kept by
the fanout-worker from like events. It holds the reader's likes of their newest
`liked_set_cap` liked posts; when they like more, `lkf:{reader}` names the oldest post
it holds, and a post older than that is asked of post-service. Both share the reader's
hash tag (the timeline's slot), and expire with the timeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from photogram_contracts.keys import counts_key, liked_floor_key, liked_key
from redis.asyncio.cluster import RedisCluster

from photogram_common.timelines import SENTINEL

# KEYS[1] = a post's counts; ARGV = version, likes, comments, TTL. Keeps the higher version.
_SET_COUNTS = """
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(%d+)'))
  if version and version >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3], 'EX', ARGV[4])
return 1
"""

# KEYS[1] = a reader's liked set; ARGV[1] = post, ARGV[2] = 1 to add, 0 to remove.
_CHANGE_IF_BUILT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '1' then redis.call('SADD', KEYS[1], ARGV[1])
else redis.call('SREM', KEYS[1], ARGV[1]) end
return 1
"""


def parse_counts(raw: bytes | str | None) -> tuple[int, int, int] | None:
    """(version, likes, comments) of a stored value; None for none or a malformed one."""
    if not raw:
        return None
    parts = raw.split()
    if len(parts) != 3:
        return None
    try:
        version, likes, comments = (int(p) for p in parts)
    except ValueError:
        return None
    return version, likes, comments


class EngagementCache:
    """Writes of the counts and liked sets; `redis` may decode responses or not."""

    def __init__(self, redis: Any, *, counts_ttl_seconds: int, liked_ttl_seconds: int) -> None:
        self.redis = redis
        self.counts_ttl_seconds = counts_ttl_seconds
        self.liked_ttl_seconds = liked_ttl_seconds
        self._set_counts = redis.register_script(_SET_COUNTS)
        self._change = redis.register_script(_CHANGE_IF_BUILT)
        self._cluster = isinstance(redis, RedisCluster)

    async def set_counts(self, post_id: int, *, version: int, likes: int, comments: int) -> bool:
        """Store the counts unless a version as new is there; True when they were stored."""
        args = [version, likes, comments, self.counts_ttl_seconds]
        return bool(await self._set_counts(keys=[counts_key(post_id)], args=args))

    async def set_many_counts(self, counts: Sequence[tuple[int, int, int, int]]) -> None:
        """`set_counts` for many posts, (post, version, likes, comments) each: one round
        trip (a page's misses), or one call per post on a Redis Cluster (different slots)."""
        if not counts:
            return
        ttl = self.counts_ttl_seconds
        if self._cluster:
            await asyncio.gather(
                *(
                    self._set_counts(keys=[counts_key(p)], args=[v, likes, comments, ttl])
                    for p, v, likes, comments in counts
                )
            )
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id, version, likes, comments in counts:
                await self._set_counts(
                    keys=[counts_key(post_id)], args=[version, likes, comments, ttl], client=pipe
                )
            await pipe.execute()

    async def liked(self, user_id: int, post_id: int, *, liked: bool) -> None:
        """The user liked (or unliked) the post: changes the liked set if it is built."""
        await self._change(keys=[liked_key(user_id)], args=[str(post_id), "1" if liked else "0"])

    async def open_liked(self, user_id: int) -> None:
        """Mark the liked set built before it is read from the source, so likes made while
        it is read land in it (as a timeline is opened for a rebuild)."""
        key = liked_key(user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, SENTINEL)
            pipe.expire(key, self.liked_ttl_seconds)
            await pipe.execute()

    async def fill_liked(self, user_id: int, post_ids: Sequence[int], *, complete: bool) -> None:
        """Add the reader's liked posts (newest first) to the opened set; when they are not
        all of them, record the oldest one held."""
        key, floor = liked_key(user_id), liked_floor_key(user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            if post_ids:
                pipe.sadd(key, *(str(p) for p in post_ids))
            pipe.expire(key, self.liked_ttl_seconds)
            if complete or not post_ids:
                pipe.delete(floor)
            else:
                pipe.set(floor, str(min(post_ids)), ex=self.liked_ttl_seconds)
            await pipe.execute()

    async def forget_liked(self, user_id: int) -> None:
        await self.redis.delete(liked_key(user_id), liked_floor_key(user_id))
