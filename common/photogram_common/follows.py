"""Each reader's pulled followees: the celebrities whose posts a feed read merges in.

A Redis set per reader (`pf:{reader}`), holding the sentinel member "0" from the moment it
is built, like a timeline: a missing key means "not built" and the reader's next feed read
rebuilds it from user-service. The fanout-worker keeps built sets current from follow
events and threshold crossings, so a feed read never asks user-service who to merge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import RedisCluster

from photogram_common.timelines import SENTINEL, pulled_key

CHUNK = 500

# KEYS[1]=set; ARGV[1]=member, ARGV[2]=1 to add, 0 to remove. Changes only a built set.
_CHANGE_IF_BUILT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '1' then return redis.call('SADD', KEYS[1], ARGV[1]) end
return redis.call('SREM', KEYS[1], ARGV[1])
"""


class PulledFollowees:
    """Per-reader sets of pulled followees, with the timelines' TTL and built/unbuilt rule."""

    def __init__(self, redis: Any, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._change = redis.register_script(_CHANGE_IF_BUILT)
        self._cluster = isinstance(redis, RedisCluster)

    async def build(self, reader_id: int, author_ids: Iterable[int]) -> None:
        """(Re)build a reader's set from the source of truth."""
        key = pulled_key(reader_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.sadd(key, SENTINEL, *(str(a) for a in author_ids))
            pipe.expire(key, self.ttl_seconds)
            await pipe.execute()

    async def members(self, reader_id: int) -> list[int] | None:
        """The reader's pulled followees, or None when the set is not built."""
        found = await self.redis.smembers(pulled_key(reader_id))
        if not found:
            return None
        return sorted(int(m) for m in found if str(m) != SENTINEL)

    async def add(self, reader_ids: Iterable[int], author_id: int) -> None:
        """Add the author to each reader's built set."""
        await self._change_all(reader_ids, author_id, add=True)

    async def remove(self, reader_ids: Iterable[int], author_id: int) -> None:
        """Remove the author from each reader's built set."""
        await self._change_all(reader_ids, author_id, add=False)

    async def forget(self, reader_id: int) -> None:
        await self.redis.delete(pulled_key(reader_id))

    async def _change_all(self, reader_ids: Iterable[int], author_id: int, *, add: bool) -> None:
        args = [str(author_id), "1" if add else "0"]
        batch: Sequence[int] = list(reader_ids)
        for start in range(0, len(batch), CHUNK):
            keys = [pulled_key(r) for r in batch[start : start + CHUNK]]
            if self._cluster:
                # Redis Cluster clients refuse scripts in pipelines: send them concurrently.
                await asyncio.gather(*(self._change(keys=[k], args=args) for k in keys))
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    await self._change(keys=[key], args=args, client=pipe)
                await pipe.execute()
