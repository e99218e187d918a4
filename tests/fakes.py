"""In-memory fakes of the peer ports (photogram_contracts.peers).

Each one keeps the state its owning service keeps, reduced to what the port shows, and
`tests/contract/test_peers.py` runs the same cases on it and on the HTTP adapter over the
real service, so a unit test on a fake tests what the system would do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from photogram_contracts.events import Crossing
from photogram_contracts.identity import Identity
from photogram_contracts.internal import CountsRead, IdempotencyKeyRead, UploadRead
from photogram_contracts.peers import Followee, FollowerPage
from photogram_contracts.schemas import (
    AuthorRead,
    AvatarRead,
    MediaRead,
    PostRead,
    PostsPage,
    PostViewerRead,
    UserMeRead,
    UserRead,
)

from photogram_common.cursors import encode_cursor
from photogram_common.problems import Problem
from photogram_common.timeutil import to_rfc3339, utcnow
from user_service.service import next_pulled


@dataclass
class FakeFollowers:
    """user-service's follow graph, last-active times and delivery flags."""

    active_days: int = 30
    celebrity_threshold: int = 10_000
    followers_of: dict[int, set[int]] = field(default_factory=dict)
    last_active: dict[int, datetime] = field(default_factory=dict)
    pulled_flags: dict[int, bool] = field(default_factory=dict)
    seen_by: list[int] = field(default_factory=list)

    def add_user(self, user_id: int, *, inactive_days: int = 0) -> int:
        self.last_active[user_id] = utcnow() - timedelta(days=inactive_days)
        self.pulled_flags.setdefault(user_id, False)
        self.followers_of.setdefault(user_id, set())
        return user_id

    def follow(self, follower_id: int, followee_id: int) -> Crossing | None:
        """Follow as user-service does, with its rule for the delivery flag; the crossing."""
        self.followers_of[followee_id].add(follower_id)
        return self._settle(followee_id)

    def unfollow(self, follower_id: int, followee_id: int) -> Crossing | None:
        self.followers_of[followee_id].discard(follower_id)
        return self._settle(followee_id)

    def _settle(self, user_id: int) -> Crossing | None:
        was = self.pulled_flags[user_id]
        now = next_pulled(
            len(self.followers_of[user_id]), was=was, threshold=self.celebrity_threshold
        )
        self.pulled_flags[user_id] = now
        if now == was:
            return None
        return "up" if now else "down"

    async def page(
        self, author_id: int, *, after: int, limit: int, active_days: int | None = None
    ) -> FollowerPage:
        days = self.active_days if active_days is None else active_days
        since = utcnow() - timedelta(days=days) if days else None
        ids = sorted(
            f
            for f in self.followers_of.get(author_id, set())
            if f > after and (since is None or self.last_active[f] >= since)
        )[:limit]
        return FollowerPage(user_ids=ids, next_after=ids[-1] if len(ids) == limit else None)

    async def followees(self, user_id: int) -> list[Followee]:
        return [
            Followee(user_id=u, followers_count=len(fs), pulled=self.pulled_flags[u])
            for u, fs in self.followers_of.items()
            if user_id in fs
        ]

    async def pulled(self, author_id: int) -> bool:
        if author_id not in self.pulled_flags:
            raise Problem(404, "No such user.", title="Not found")
        return self.pulled_flags[author_id]

    async def seen(self, reader: Identity) -> None:
        self.seen_by.append(reader.user_id)
        self.last_active[reader.user_id] = utcnow()


@dataclass
class FakePostCatalog:
    """post-service's posts (IDs are time-ordered, as the ID generator makes them)."""

    live: dict[int, PostRead] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    keys: dict[tuple[int, str], IdempotencyKeyRead] = field(default_factory=dict)
    likes: dict[int, set[int]] = field(default_factory=dict)
    versions: dict[int, int] = field(default_factory=dict)
    liked_cap: int = 5000

    def add(
        self,
        author_id: int,
        post_id: int,
        *,
        username: str = "someone",
        media_ids: Sequence[int] = (),
    ) -> PostRead:
        post = PostRead(
            post_id=str(post_id),
            user_id=str(author_id),
            author=AuthorRead(user_id=str(author_id), username=username),
            caption=None,
            location=None,
            created_at=to_rfc3339(utcnow()),
            media=[_media(author_id, str(m)) for m in media_ids],
        )
        self.live[post_id] = post
        return post

    def delete(self, post_id: int) -> None:
        self.live.pop(post_id, None)
        self.deleted.add(post_id)

    async def newest(
        self, author_ids: Sequence[int], *, limit: int, before: int | None = None
    ) -> list[int]:
        authors = {str(a) for a in author_ids}
        ids = [
            p
            for p, post in self.live.items()
            if post.user_id in authors and (before is None or p < before)
        ]
        return sorted(ids, reverse=True)[:limit]

    async def posts(self, post_ids: Sequence[int]) -> list[PostRead]:
        return [self.live[p] for p in post_ids if p in self.live]

    async def newest_page(
        self, author_ids: Sequence[int], *, limit: int, before: int | None, viewer_id: int
    ) -> PostsPage:
        ids = await self.newest(author_ids, limit=limit + 1, before=before)
        page = ids[:limit]
        counts = {int(c.post_id): c for c in await self.counts(page, viewer_id=viewer_id)}
        items = [
            self.live[p].model_copy(
                update={
                    "likes_count": counts[p].likes_count,
                    "comments_count": counts[p].comments_count,
                    "viewer": PostViewerRead(liked=counts[p].liked),
                }
            )
            for p in page
        ]
        return PostsPage(
            items=items, next_cursor=encode_cursor(page[-1]) if len(ids) > limit else None
        )

    async def earlier_use(self, caller: Identity, key: str) -> IdempotencyKeyRead | None:
        return self.keys.get((caller.user_id, key))

    async def counts(self, post_ids: Sequence[int], *, viewer_id: int) -> list[CountsRead]:
        return [
            CountsRead(
                post_id=str(p),
                likes_count=len(self.likes.get(p, ())),
                comments_count=0,
                counts_version=self.versions.get(p, 0),
                liked=viewer_id in self.likes.get(p, ()),
            )
            for p in post_ids
            if p in self.live
        ]

    async def liked(self, user_id: int) -> tuple[list[int], bool]:
        found = sorted((p for p, users in self.likes.items() if user_id in users), reverse=True)
        return found[: self.liked_cap], len(found) <= self.liked_cap

    async def holders(self, media_ids: Sequence[int]) -> dict[int, int]:
        wanted = set(media_ids)
        return {
            int(m.media_id): p
            for p, post in self.live.items()
            for m in post.media
            if int(m.media_id) in wanted
        }

    def like(self, user_id: int, post_id: int) -> None:
        self.likes.setdefault(post_id, set()).add(user_id)
        self.versions[post_id] = self.versions.get(post_id, 0) + 1


@dataclass
class FakeFeedCache:
    """feed-service's knowledge of deleted posts."""

    forgotten: list[int] = field(default_factory=list)

    async def forget(self, post_id: int, *, by: Identity | None = None) -> None:
        self.forgotten.append(post_id)


def _media(owner_id: int, media_id: str) -> MediaRead:
    return MediaRead(
        media_id=media_id,
        user_id=str(owner_id),
        content_type="image/jpeg",
        width=1,
        height=1,
        blurhash="",
        variants={},
    )


@dataclass
class FakeMediaLibrary:
    """media-service's media and avatars, by owner."""

    owners: dict[str, int] = field(default_factory=dict)
    media: dict[str, MediaRead] = field(default_factory=dict)
    avatars: set[int] = field(default_factory=set)

    def add(self, owner_id: int, media_id: str) -> MediaRead:
        read = _media(owner_id, media_id)
        self.owners[media_id], self.media[media_id] = owner_id, read
        return read

    async def store(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> UploadRead:
        raise NotImplementedError("uploads are parsed by media-service: e2e tests cover them")

    async def digest(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> str:
        raise NotImplementedError("uploads are parsed by media-service: e2e tests cover them")

    async def set_avatar(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> AvatarRead:
        raise NotImplementedError("uploads are parsed by media-service: e2e tests cover them")

    async def drop_avatar(self, caller: Identity) -> None:
        self.avatars.discard(caller.user_id)


@dataclass
class FakeUserDirectory:
    """user-service's accounts, as the gateway reads them by ID."""

    users: dict[str, UserMeRead] = field(default_factory=dict)

    def add(self, user_id: int, username: str) -> int:
        self.users[str(user_id)] = UserMeRead(
            user_id=str(user_id),
            username=username,
            email=f"{username}@example.com",
            first_name=None,
            last_name=None,
            location=None,
            created_at=to_rfc3339(utcnow()),
            followers_count=0,
            following_count=0,
            posts_count=0,
        )
        return user_id

    def remove(self, user_id: int) -> None:
        self.users.pop(str(user_id), None)

    async def batch(self, caller: Identity, user_ids: Sequence[str]) -> list[UserRead]:
        found = (self.users.get(user_id) for user_id in user_ids)
        return [UserRead.model_validate(u.model_dump()) for u in found if u is not None]

    async def set_avatar(self, caller: Identity, avatar: AvatarRead | None) -> UserMeRead:
        me = self.users[str(caller.user_id)].model_copy(update={"avatar": avatar})
        self.users[me.user_id] = me
        return me
