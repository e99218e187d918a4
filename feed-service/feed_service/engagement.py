"""A page's likes, comments and the reader's likes, joined into the posts' cached bodies.

The page script returns them with the bodies (one round trip); what Redis did not hold
(counts not cached, a like older than the reader's liked set) is asked of post-service in
one batch call for the page, and the counts are cached for the next reader.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence

from photogram_contracts.internal import CountsRead
from photogram_contracts.peers import PostCatalog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feed_service.page_read import UNKNOWN
from photogram_common.engagement_cache import EngagementCache, parse_counts


def with_engagement(body: bytes, *, likes: int, comments: int, liked: bool) -> bytes:
    """A cached post body (a JSON object) with the engagement fields added at its end."""
    viewer = b"true" if liked else b"false"
    return b'%s,"likes_count":%d,"comments_count":%d,"viewer":{"liked":%s}}' % (
        body[:-1],
        likes,
        comments,
        viewer,
    )


class PageEngagement:
    """Joins a page's engagement into its bodies; `cache` writes the counts it fetched."""

    def __init__(self, *, cache: EngagementCache, posts: PostCatalog) -> None:
        self.cache = cache
        self._posts = posts

    async def join(
        self,
        reader_id: int,
        kept: Sequence[tuple[int, bytes]],
        *,
        counts: Mapping[int, bytes | None],
        liked: Mapping[int, int],
    ) -> list[bytes]:
        """The bodies with their engagement; a post post-service no longer has is left out."""
        cached = {p: parse_counts(counts.get(p)) for p, _ in kept}
        flags = {p: liked.get(p, UNKNOWN) for p, _ in kept}
        need = [p for p, _ in kept if cached[p] is None or flags[p] == UNKNOWN]
        fetched: dict[int, CountsRead] = {}
        if need:
            fetched = {
                int(c.post_id): c for c in await self._posts.counts(need, viewer_id=reader_id)
            }
            await self._remember([c for p, c in fetched.items() if cached.get(p) is None])
        out: list[bytes] = []
        for post_id, body in kept:
            found = fetched.get(post_id)
            known = cached[post_id]
            if known is not None:
                _, likes, comments = known
            elif found is not None:
                likes, comments = found.likes_count, found.comments_count
            else:
                continue  # deleted since its body was read
            if flags[post_id] != UNKNOWN:
                is_liked = bool(flags[post_id])
            elif found is not None:
                is_liked = found.liked
            else:
                continue
            out.append(with_engagement(body, likes=likes, comments=comments, liked=is_liked))
        return out

    async def _remember(self, missing: Iterable[CountsRead]) -> None:
        """Cache fetched counts that Redis did not hold (the higher version wins), in one
        round trip for the page."""
        writes = [
            (int(c.post_id), c.counts_version, c.likes_count, c.comments_count) for c in missing
        ]
        # Only a cache fill: without Redis the page is answered all the same.
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
            await self.cache.set_many_counts(writes)
