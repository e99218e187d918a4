"""Each reader's follow sets in Redis: who they follow, and which of those are pulled.

Two sets per reader, built together from user-service and kept current by the
fanout-worker from follow events and threshold crossings: `fl:{reader}`, every account
the reader follows (a feed read keeps only posts by these and the reader's own, so a
post pushed by a fan-out racing an unfollow never shows), and `pf:{reader}`, the followed
celebrities whose recent lists a read merges. Each holds the sentinel member "0" from the
moment it is built, like a timeline: a missing key means "not built", and the reader's
next feed read rebuilds both. Both share the reader's hash tag (one Redis Cluster slot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from photogram_contracts.keys import followees_key, pulled_key
from redis.asyncio import RedisCluster

from photogram_common.timelines import SENTINEL

CHUNK = 500
# Script calls in flight at once on Redis Cluster, where each reader's key is a call of its
# own: a node's connection pool in the cluster client does not wait, it raises
# MaxConnectionsError past its size (photogram_common.redis).
CLUSTER_IN_FLIGHT = 100

# KEYS = sets; ARGV[1] = member, ARGV[2] = 1 to add, 0 to remove. Changes built sets only.
_CHANGE_IF_BUILT = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    if ARGV[2] == '1' then redis.call('SADD', key, ARGV[1])
    else redis.call('SREM', key, ARGV[1]) end
  end
end
return 1
"""


class FollowSets:
    """Per-reader followee and pulled-followee sets, with the timelines' TTL."""

    def __init__(self, redis: Any, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._change = redis.register_script(_CHANGE_IF_BUILT)
        self._cluster = isinstance(redis, RedisCluster)

    async def build(
        self, reader_id: int, *, followees: Iterable[int], pulled: Iterable[int]
    ) -> None:
        """(Re)build a reader's two sets from the source of truth."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, members in (
                (followees_key(reader_id), followees),
                (pulled_key(reader_id), pulled),
            ):
                pipe.delete(key)
                pipe.sadd(key, SENTINEL, *(str(m) for m in members))
                pipe.expire(key, self.ttl_seconds)
            await pipe.execute()

    async def followees(self, reader_id: int) -> list[int] | None:
        """Whom the reader follows, or None when the set is not built."""
        return await self._members(followees_key(reader_id))

    async def pulled(self, reader_id: int) -> list[int] | None:
        """The reader's pulled followees, or None when the set is not built."""
        return await self._members(pulled_key(reader_id))

    async def followed(self, reader_id: int, author_ids: Sequence[int]) -> set[int]:
        """Those of the authors the reader follows (or is), per the built set."""
        if not author_ids:
            return set()
        found = await self.redis.smismember(followees_key(reader_id), [str(a) for a in author_ids])
        return {a for a, yes in zip(author_ids, found, strict=True) if yes or a == reader_id}

    async def follow(self, reader_id: int, author_id: int, *, pulled: bool) -> None:
        """The reader followed the author (pulled: the author is a celebrity)."""
        keys = [followees_key(reader_id), *([pulled_key(reader_id)] if pulled else [])]
        await self._change(keys=keys, args=[str(author_id), "1"])

    async def unfollow(self, reader_id: int, author_id: int) -> None:
        keys = [followees_key(reader_id), pulled_key(reader_id)]
        await self._change(keys=keys, args=[str(author_id), "0"])

    async def add_pulled(self, reader_ids: Iterable[int], author_id: int) -> None:
        """The author crossed the threshold upwards: pull them for each reader."""
        await self._change_pulled(reader_ids, author_id, add=True)

    async def remove_pulled(self, reader_ids: Iterable[int], author_id: int) -> None:
        """The author dropped below the threshold: stop pulling them for each reader."""
        await self._change_pulled(reader_ids, author_id, add=False)

    async def forget(self, reader_id: int) -> None:
        await self.redis.delete(followees_key(reader_id), pulled_key(reader_id))

    async def _members(self, key: str) -> list[int] | None:
        found = await self.redis.smembers(key)
        if not found:
            return None
        return sorted(int(m) for m in found if int(m) != int(SENTINEL))

    async def _change_pulled(self, reader_ids: Iterable[int], author_id: int, *, add: bool) -> None:
        args = [str(author_id), "1" if add else "0"]
        batch = list(reader_ids)
        for start in range(0, len(batch), CHUNK):
            keys = [pulled_key(r) for r in batch[start : start + CHUNK]]
            if self._cluster:
                # Keys of different readers live in different slots: one call per key.
                for first in range(0, len(keys), CLUSTER_IN_FLIGHT):
                    part = keys[first : first + CLUSTER_IN_FLIGHT]
                    await asyncio.gather(*(self._change(keys=[k], args=args) for k in part))
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    await self._change(keys=[key], args=args, client=pipe)
                await pipe.execute()
