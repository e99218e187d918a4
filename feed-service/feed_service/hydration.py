"""Post hydration: a Redis cache of post JSON, one batch call to post-service for the misses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from photogram_common.clients import ServiceClient

TOMBSTONE_SECONDS = 86400


# Both keys of a post share a hash tag, so they live in one Redis Cluster slot.
def post_cache_key(post_id: int) -> str:
    return f"post:{{{post_id}}}"


def tombstone_key(post_id: int) -> str:
    return f"pd:{{{post_id}}}"


class PostHydrator:
    """Turns post IDs into posts, leaving out deleted ones at once (tombstones win over cache)."""

    def __init__(self, *, redis: Any, posts: ServiceClient, ttl_seconds: int) -> None:
        self._redis = redis
        self._posts = posts
        self._ttl = ttl_seconds

    async def hydrate(self, post_ids: Sequence[int]) -> list[dict[str, Any]]:
        if not post_ids:
            return []
        # GETs in one pipeline rather than MGET: on Redis Cluster the keys span slots.
        async with self._redis.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                pipe.get(post_cache_key(post_id))
                pipe.get(tombstone_key(post_id))
            replies = await pipe.execute()
        cached, tombstones = replies[0::2], replies[1::2]
        found: dict[int, dict[str, Any]] = {}
        misses: list[int] = []
        for post_id, raw, dead in zip(post_ids, cached, tombstones, strict=True):
            if dead:
                continue
            if raw:
                found[post_id] = json.loads(raw)
            else:
                misses.append(post_id)
        if misses:
            page = await self._posts.call(
                "POST", "/internal/posts/batch", json={"post_ids": [str(p) for p in misses]}
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                for item in page["items"]:
                    found[int(item["post_id"])] = item
                    pipe.set(post_cache_key(int(item["post_id"])), json.dumps(item), ex=self._ttl)
                await pipe.execute()
        return [found[p] for p in post_ids if p in found]

    async def forget(self, post_id: int) -> None:
        """A post was deleted: drop it from the cache and keep it out from now on."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(tombstone_key(post_id), 1, ex=TOMBSTONE_SECONDS)
            pipe.delete(post_cache_key(post_id))
            await pipe.execute()
