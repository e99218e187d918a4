"""Post bodies as ready JSON bytes in Redis; misses come from post-service in one batch call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from photogram_contracts.keys import post_cache_key
from photogram_contracts.peers import PostCatalog
from photogram_contracts.schemas import ENGAGEMENT_FIELDS, PostRead

from feed_service.page_read import author_of

TOMBSTONE_SECONDS = 86400
DELETED = b""


class PostBodies:
    """Fills a page's missing bodies and keeps deleted posts out at once.

    A deleted post's cache entry is overwritten with an empty value (a tombstone) and
    fills are `SET NX`, so a read that fetched the post just before its deletion cannot
    put it back. `redis` must return bytes.
    """

    def __init__(self, *, redis: Any, posts: PostCatalog, ttl_seconds: int) -> None:
        self._redis = redis
        self._posts = posts
        self._ttl = ttl_seconds

    async def complete(
        self,
        post_ids: Sequence[int],
        cached: Sequence[bytes | None],
        *,
        followed: Callable[[list[int]], Awaitable[set[int]]],
    ) -> list[tuple[int, bytes]]:
        """The live posts among `post_ids` with their bodies, in order; misses fetched once.

        A fetched post whose author `followed` leaves out is dropped, as the page script
        drops a cached one.
        """
        misses = [p for p, body in zip(post_ids, cached, strict=True) if body is None]
        fetched = await self._fetch(misses) if misses else {}
        if fetched:
            authors = {p: author_of(b) for p, b in fetched.items()}
            keep = await followed(sorted({a for a in authors.values() if a is not None}))
            fetched = {p: b for p, b in fetched.items() if authors[p] in keep}
        bodies = []
        for post_id, body in zip(post_ids, cached, strict=True):
            found = fetched.get(post_id) if body is None else body
            if found:  # None: gone from post-service; DELETED: a tombstone
                bodies.append((post_id, found))
        return bodies

    async def _fetch(self, post_ids: Sequence[int]) -> dict[int, bytes]:
        found = {int(post.post_id): cached_body(post) for post in await self._posts.posts(post_ids)}
        async with self._redis.pipeline(transaction=False) as pipe:
            for post_id, body in found.items():
                pipe.set(post_cache_key(post_id), body, ex=self._ttl, nx=True)
            await pipe.execute()
        return found

    async def forget(self, post_id: int) -> None:
        """A post was deleted: leave a tombstone where its body was."""
        await self._redis.set(post_cache_key(post_id), DELETED, ex=TOMBSTONE_SECONDS)


def cached_body(post: PostRead) -> bytes:
    """A post's JSON as cached: without the fields that change (joined in at read time)."""
    return orjson.dumps(post.model_dump(exclude=ENGAGEMENT_FIELDS))


def page_json(bodies: Sequence[bytes], next_cursor: str | None) -> bytes:
    """A page of posts as the API's JSON, joined from the bodies' bytes."""
    return b"".join(
        (b'{"items":[', b",".join(bodies), b'],"next_cursor":', orjson.dumps(next_cursor), b"}")
    )
