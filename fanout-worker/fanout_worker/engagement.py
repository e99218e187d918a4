"""Likes and comments into what the feed reads: each post's counts, each reader's likes.

A consumer group of its own, so a large fan-out never delays counts, nor counts a fan-out.
Every effect is idempotent and order-proof: counts keep the highest version, and one
user's like and unlike of one post travel in order (the topic is keyed by post).
"""

from __future__ import annotations

from dataclasses import dataclass

from photogram_contracts.events import CommentCreated, CommentDeleted, LikeCreated, LikeDeleted

from photogram_common.bus.consumer import Routes
from photogram_common.engagement_cache import EngagementCache

ENGAGEMENT_GROUP_SUFFIX = "-engagement"


@dataclass
class EngagementHandlers:
    cache: EngagementCache

    def routes(self) -> Routes:
        return {
            LikeCreated: [self.counts, self.liked],
            LikeDeleted: [self.counts, self.unliked],
            CommentCreated: [self.counts],
            CommentDeleted: [self.counts],
        }

    async def counts(
        self, event: LikeCreated | LikeDeleted | CommentCreated | CommentDeleted
    ) -> None:
        await self.cache.set_counts(
            event.post_id,
            version=event.counts_version,
            likes=event.likes_count,
            comments=event.comments_count,
        )

    async def liked(self, event: LikeCreated) -> None:
        await self.cache.liked(event.user_id, event.post_id, liked=True)

    async def unliked(self, event: LikeDeleted) -> None:
        await self.cache.liked(event.user_id, event.post_id, liked=False)
