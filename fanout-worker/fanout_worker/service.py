"""Fan-out work for each event. Every effect is idempotent: a redelivery changes nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from photogram_contracts.events import (
    Crossing,
    Event,
    FollowCreated,
    FollowDeleted,
    PostCreated,
    PostDeleted,
    UserDeleted,
)
from photogram_contracts.keys import (
    followees_key,
    liked_floor_key,
    liked_key,
    pulled_key,
    recent_key,
    timeline_key,
)
from photogram_contracts.peers import FeedCache, Followers, PostCatalog

from photogram_common import tracing
from photogram_common.bus.consumer import Routes, WithEnvelope
from photogram_common.follows import FollowSets
from photogram_common.ids import id_to_unix_ms
from photogram_common.metrics import (
    DELIVERY_LATENCY,
    FANOUT_DURATION,
    FANOUT_INSERTS,
    count,
    current_service,
    observe,
)
from photogram_common.timelines import TimelineStore

log = logging.getLogger(__name__)


@dataclass
class FanoutHandlers:
    timelines: TimelineStore
    follows: FollowSets
    users: Followers
    posts: PostCatalog
    feed: FeedCache
    # Read only for follow events written before user-service kept the pulled flag.
    celebrity_threshold: int
    page_size: int = 1000
    backfill_posts: int = 40

    def routes(self) -> Routes:
        """The table of handled events: each type and its handlers, as the consumer runs them."""
        return {
            PostCreated: [self.post_created],
            PostDeleted: [self.post_deleted],
            FollowCreated: [self.follow_created],
            FollowDeleted: [self.follow_deleted],
            UserDeleted: [self.user_deleted],
        }

    async def handle(self, event: Event) -> None:
        """Run the handlers of one event through the same table (tools and tests)."""
        for route in self.routes().get(type(event), ()):
            assert not isinstance(route, WithEnvelope)  # every route here takes the event
            await route(event)

    async def _followers(
        self, user_id: int, *, active_days: int | None = None
    ) -> AsyncIterator[list[int]]:
        """Pages of follower IDs (active ones unless `active_days` is 0: all)."""
        after = 0
        while True:
            page = await self.users.page(
                user_id, after=after, limit=self.page_size, active_days=active_days
            )
            if page.user_ids:
                yield page.user_ids
            if page.next_after is None:
                return
            after = page.next_after

    async def _newest_posts(self, author_id: int, limit: int) -> list[int]:
        return await self.posts.newest([author_id], limit=limit)

    async def _delivery(self, event: FollowCreated | FollowDeleted) -> tuple[bool, Crossing | None]:
        """Whether the followee is pulled after this change, and whether it crossed."""
        if event.followee_pulled is not None:
            return event.followee_pulled, event.followee_crossed
        # Written before user-service kept the flag (an upgrade in flight, a replay): the
        # flag is asked for, and the old rule (a crossing at exactly the threshold) names
        # the crossing, which the crossing handlers check against the flag anyway.
        pulled = await self.users.pulled(event.followee_id)
        count, threshold = event.followee_followers_count, self.celebrity_threshold
        if isinstance(event, FollowCreated):
            return pulled, "up" if count == threshold else None
        return pulled, "down" if count == threshold - 1 else None

    async def post_created(self, event: PostCreated) -> None:
        # The recent list first: a concurrent threshold crossing reads it (see decisions.md).
        if not await self.timelines.add_recent(event.author_id, event.post_id):
            recent = await self._newest_posts(event.author_id, self.timelines.recent_cap)
            await self.timelines.build_recent(event.author_id, recent)
        started = time.perf_counter()
        with tracing.span(
            "fanout timeline writes", current_service(), **{"photogram.post_id": event.post_id}
        ) as span:
            pushed = await self.timelines.push([event.author_id], event.post_id)
            if not await self.users.pulled(event.author_id):
                # The next page of followers is read while the previous one is written.
                followers = self._followers(event.author_id)
                pushed += await self.timelines.push_pages(followers, event.post_id)
                log.info("fanned out", extra={"post_id": event.post_id, "timelines": pushed})
            # else pulled at read time: no follower timeline is written, only the author's own.
            if span is not None:
                span.set_attribute("photogram.timelines", pushed)
        self._fanned_out(event.post_id, pushed, time.perf_counter() - started)

    @staticmethod
    def _fanned_out(post_id: int, timelines: int, seconds: float) -> None:
        """The fan-out's metrics: timelines written, its duration, and the delivery latency
        (from the post's creation, the millisecond in its ID, to its timeline writes)."""
        count(FANOUT_INSERTS, timelines)
        observe(FANOUT_DURATION, seconds)
        observe(DELIVERY_LATENCY, max(0.0, time.time() - id_to_unix_ms(post_id) / 1000))

    async def post_deleted(self, event: PostDeleted) -> None:
        await self.feed.forget(event.post_id)
        await self.timelines.remove_recent(event.author_id, event.post_id)
        await self.timelines.remove([event.author_id], [event.post_id])
        async for followers in self._followers(event.author_id, active_days=0):
            await self.timelines.remove(followers, [event.post_id])

    async def user_deleted(self, event: UserDeleted) -> None:
        """A deleted account's own lists: its followers lost its posts with its follows
        (follow.deleted) and lose any left with its posts (post.deleted)."""
        user = event.user_id
        await self.timelines.redis.delete(
            timeline_key(user),
            followees_key(user),
            pulled_key(user),
            recent_key(user),
            liked_key(user),
            liked_floor_key(user),
        )

    async def follow_created(self, event: FollowCreated) -> None:
        pulled, crossed = await self._delivery(event)
        await self.follows.follow(event.follower_id, event.followee_id, pulled=pulled)
        await self._crossed(event.followee_id, crossed)
        if pulled:
            return  # the follower's next read merges the followee's recent posts
        posts = await self._newest_posts(event.followee_id, self.backfill_posts)
        await self.timelines.push_posts(event.follower_id, posts)

    async def follow_deleted(self, event: FollowDeleted) -> None:
        _, crossed = await self._delivery(event)
        await self.follows.unfollow(event.follower_id, event.followee_id)
        posts = await self._newest_posts(event.followee_id, self.timelines.cap)
        await self.timelines.remove([event.follower_id], posts)
        await self._crossed(event.followee_id, crossed)

    async def _crossed(self, author_id: int, crossed: Crossing | None) -> None:
        # Either event can cross either way: a follow crosses down, an unfollow up, after
        # the threshold was changed (the flag follows the count at the next change).
        if crossed == "up":
            await self._crossed_up(author_id)
        elif crossed == "down":
            await self._crossed_down(author_id)

    async def _crossed_up(self, author_id: int) -> None:
        """The author became pulled: every follower's reads merge them from now on.

        Follow events of different followers arrive out of order, so the author's current
        flag decides, not the event's.
        """
        if not await self.users.pulled(author_id):
            return
        await self._pull_for_followers(author_id)

    async def _crossed_down(self, author_id: int) -> None:
        """The author is pushed again: push what reads showed, then stop pulling."""
        if await self.users.pulled(author_id):
            return
        # Their posts were never pushed; reads merged up to a recent list's worth of them.
        recent = await self._newest_posts(author_id, self.timelines.recent_cap)
        async for followers in self._followers(author_id):
            for post_id in recent:
                await self.timelines.push(followers, post_id)
        async for followers in self._followers(author_id, active_days=0):
            await self.follows.remove_pulled(followers, author_id)
        if await self.users.pulled(author_id):
            # Pulled again meanwhile: that crossing's handler may have added them before
            # the removal above, so add them back (the merge deduplicates the pushed posts).
            await self._pull_for_followers(author_id)

    async def _pull_for_followers(self, author_id: int) -> None:
        async for followers in self._followers(author_id, active_days=0):
            await self.follows.add_pulled(followers, author_id)
