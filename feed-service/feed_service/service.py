"""The home feed: the pushed timeline merged with pulled celebrity posts, hydrated, paged."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from feed_service.hydration import PostHydrator
from photogram_common.clients import ServiceClient
from photogram_common.cursors import decode_cursor, encode_cursor
from photogram_common.identity import Identity
from photogram_common.timelines import TimelineStore, rebuild_lock_key, timeline_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Followees:
    pushed: list[int]
    pulled: list[int]


@dataclass
class FeedService:
    timelines: TimelineStore
    hydrator: PostHydrator
    users: ServiceClient
    posts: ServiceClient
    celebrity_threshold: int
    rebuild_wait_seconds: float = 5.0
    seen_every_seconds: int = 300

    async def followees(self, user_id: int) -> Followees:
        found = await self.users.call("GET", f"/internal/users/{user_id}/followees")
        pushed: list[int] = []
        pulled: list[int] = []
        for item in found["items"]:
            target = pulled if item["followers_count"] >= self.celebrity_threshold else pushed
            target.append(int(item["user_id"]))
        return Followees(pushed=pushed, pulled=pulled)

    async def page(self, caller: Identity, *, cursor: str | None, limit: int) -> dict[str, Any]:
        before = decode_cursor(cursor, arity=1)[0] if cursor else None
        await self._mark_seen(caller)
        followees = await self.followees(caller.user_id)
        await self.ensure_built(caller.user_id, followees)
        await self._ensure_recent(followees.pulled)
        items: list[dict[str, Any]] = []
        next_before: int | None = before
        more = True
        # Deleted posts drop out at hydration; keep reading until the page is full or done.
        while more and len(items) < limit:
            want = limit - len(items)
            ids = await self._merged(
                caller.user_id, followees.pulled, before=next_before, limit=want + 1
            )
            more = len(ids) > want
            page_ids = ids[:want]
            if page_ids:
                next_before = page_ids[-1]
            items.extend(await self.hydrator.hydrate(page_ids))
        await self.timelines.touch(caller.user_id)
        return {"items": items, "next_cursor": encode_cursor(next_before) if more else None}

    async def _merged(
        self, user_id: int, pulled: list[int], *, before: int | None, limit: int
    ) -> list[int]:
        return await self.timelines.home_page(user_id, pulled, before=before, limit=limit)

    async def ensure_built(self, user_id: int, followees: Followees) -> None:
        """Rebuild a timeline that is not built, once, while other readers wait for it."""
        redis = self.timelines.redis
        lock = rebuild_lock_key(timeline_key(user_id))
        deadline = asyncio.get_running_loop().time() + self.rebuild_wait_seconds
        while True:
            # An opened timeline is "built" for pushes, but readers wait until it is filled.
            if await self.timelines.is_built(user_id) and not await redis.exists(lock):
                return
            if await redis.set(lock, 1, nx=True, ex=60):
                try:
                    await self._rebuild(user_id, followees)
                finally:
                    await redis.delete(lock)
                return
            if asyncio.get_running_loop().time() > deadline:
                return  # the rebuilder is stuck; serve what there is rather than hang
            await asyncio.sleep(0.02)

    async def _rebuild(self, user_id: int, followees: Followees) -> None:
        # Open first, so posts fanned out while we read the source of truth land too.
        await self.timelines.open_for_rebuild(user_id)
        authors = [user_id, *followees.pushed]
        found = await self.posts.call(
            "POST",
            "/internal/posts/newest",
            json={"author_ids": [str(a) for a in authors], "limit": self.timelines.cap},
        )
        post_ids = [int(p) for p in found["post_ids"]]
        await self.timelines.fill(user_id, post_ids)
        log.info(
            "timeline rebuilt",
            extra={"user_id": user_id, "posts": len(post_ids), "authors": len(authors)},
        )

    async def _ensure_recent(self, authors: list[int]) -> None:
        """Rebuild the recent lists of pulled authors that Redis does not hold."""
        for author_id in await self.timelines.unbuilt_recent(authors):
            found = await self.posts.call(
                "POST",
                "/internal/posts/newest",
                json={"author_ids": [str(author_id)], "limit": self.timelines.recent_cap},
            )
            await self.timelines.build_recent(author_id, [int(p) for p in found["post_ids"]])

    async def _mark_seen(self, caller: Identity) -> None:
        """Refresh last-active in user-service at most every few minutes (it drives fan-out)."""
        if await self.timelines.redis.set(
            f"seen:{caller.user_id}", 1, nx=True, ex=self.seen_every_seconds
        ):
            await self.users.call("POST", "/users/me/seen", identity=caller)
