"""Fan-out work for each event. Every effect is idempotent: a redelivery changes nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from photogram_common.bus.consumer import Routes
from photogram_common.clients import ServiceClient
from photogram_common.events import Event, FollowCreated, FollowDeleted, PostCreated, PostDeleted
from photogram_common.follows import FollowSets
from photogram_common.timelines import TimelineStore

log = logging.getLogger(__name__)


@dataclass
class FanoutHandlers:
    timelines: TimelineStore
    follows: FollowSets
    users: ServiceClient
    posts: ServiceClient
    feed: ServiceClient
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
        }

    async def handle(self, event: Event) -> None:
        """Run the handlers of one event through the same table (tools and tests)."""
        for handler in self.routes().get(type(event), ()):
            await handler(event)

    async def _followers(
        self, user_id: int, *, active_days: int | None = None
    ) -> AsyncIterator[list[int]]:
        """Pages of follower IDs (active ones unless `active_days` is 0: all)."""
        after = 0
        while True:
            params = {"after": after, "limit": self.page_size}
            if active_days is not None:
                params["active_days"] = active_days
            page = await self.users.call(
                "GET", f"/internal/users/{user_id}/active-followers", params=params
            )
            ids = [int(i) for i in page["user_ids"]]
            if ids:
                yield ids
            if page["next_after"] is None:
                return
            after = int(page["next_after"])

    async def _newest_posts(self, author_id: int, limit: int) -> list[int]:
        found = await self.posts.call(
            "POST",
            "/internal/posts/newest",
            json={"author_ids": [str(author_id)], "limit": limit},
        )
        return [int(p) for p in found["post_ids"]]

    async def _followers_count(self, user_id: int) -> int:
        user = await self.users.call("GET", f"/users/{user_id}")
        return int(user["followers_count"])

    async def post_created(self, event: PostCreated) -> None:
        # The recent list first: a concurrent threshold crossing reads it (see decisions.md).
        if not await self.timelines.add_recent(event.author_id, event.post_id):
            recent = await self._newest_posts(event.author_id, self.timelines.recent_cap)
            await self.timelines.build_recent(event.author_id, recent)
        await self.timelines.push([event.author_id], event.post_id)
        if await self._followers_count(event.author_id) >= self.celebrity_threshold:
            return  # pulled at read time: no follower timeline is written
        # The next page of followers is read while the previous one is written.
        pushed = await self.timelines.push_pages(self._followers(event.author_id), event.post_id)
        log.info("fanned out", extra={"post_id": event.post_id, "timelines": pushed})

    async def post_deleted(self, event: PostDeleted) -> None:
        await self.feed.call("POST", f"/internal/posts/{event.post_id}/deleted")
        await self.timelines.remove_recent(event.author_id, event.post_id)
        await self.timelines.remove([event.author_id], [event.post_id])
        async for followers in self._followers(event.author_id, active_days=0):
            await self.timelines.remove(followers, [event.post_id])

    async def follow_created(self, event: FollowCreated) -> None:
        pulled = event.followee_followers_count >= self.celebrity_threshold
        await self.follows.follow(event.follower_id, event.followee_id, pulled=pulled)
        if pulled:
            # The follower's next read merges the followee's recent posts.
            if event.followee_followers_count == self.celebrity_threshold:
                await self._crossed_up(event.followee_id)
            return
        posts = await self._newest_posts(event.followee_id, self.backfill_posts)
        await self.timelines.push_posts(event.follower_id, posts)

    async def follow_deleted(self, event: FollowDeleted) -> None:
        await self.follows.unfollow(event.follower_id, event.followee_id)
        posts = await self._newest_posts(event.followee_id, self.timelines.cap)
        await self.timelines.remove([event.follower_id], posts)
        if event.followee_followers_count == self.celebrity_threshold - 1:
            await self._crossed_down(event.followee_id)

    async def _crossed_up(self, author_id: int) -> None:
        """The author reached the threshold: every follower's reads merge them from now on.

        Follow events of different followers arrive out of order, so the author's current
        count decides, not the event's.
        """
        if await self._followers_count(author_id) < self.celebrity_threshold:
            return
        async for followers in self._followers(author_id, active_days=0):
            await self.follows.add_pulled(followers, author_id)

    async def _crossed_down(self, author_id: int) -> None:
        """The author dropped below the threshold: push what reads showed, then stop pulling."""
        if await self._followers_count(author_id) >= self.celebrity_threshold:
            return
        # Their posts were never pushed; reads merged up to a recent list's worth of them.
        recent = await self._newest_posts(author_id, self.timelines.recent_cap)
        async for followers in self._followers(author_id):
            for post_id in recent:
                await self.timelines.push(followers, post_id)
        async for followers in self._followers(author_id, active_days=0):
            await self.follows.remove_pulled(followers, author_id)
