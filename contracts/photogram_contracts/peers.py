"""The peer ports: each call one service makes to another, as a small typed Protocol.

A caller holds a port, never a `ServiceClient`: `photogram_common.peer_clients` adapts
each port to its owner's internal routes (the one place a URL or a body is built), and
the tests' fakes implement the same Protocols in memory. A peer's refusal reaches the
caller as the `Problem` it answered; a peer that is down or slow as a 503 `Problem`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from photogram_contracts.identity import Identity
from photogram_contracts.internal import CountsRead, IdempotencyKeyRead, UploadRead
from photogram_contracts.schemas import AvatarRead, PostRead, PostsPage, UserMeRead, UserRead


@dataclass(frozen=True)
class FollowerPage:
    """Follower IDs in ascending order; `next_after` is None on the last page."""

    user_ids: list[int]
    next_after: int | None


@dataclass(frozen=True)
class Followee:
    user_id: int
    followers_count: int
    # user-service's delivery flag (it has hysteresis), not a comparison of the count.
    pulled: bool


class Followers(Protocol):
    """user-service, as the fan-out and the feed read the follow graph."""

    async def page(
        self, author_id: int, *, after: int, limit: int, active_days: int | None = None
    ) -> FollowerPage:
        """Followers of `author_id` with IDs above `after`, active within `active_days`
        (None: user-service's setting; 0: every follower)."""
        ...

    async def followees(self, user_id: int) -> list[Followee]:
        """Everyone `user_id` follows."""
        ...

    async def pulled(self, author_id: int) -> bool:
        """Whether the author's posts are pulled at read time (404 Problem: no such user)."""
        ...

    async def seen(self, reader: Identity) -> None:
        """Record that the reader was active (it drives the fan-out)."""
        ...


class PostCatalog(Protocol):
    """post-service, as the feed, the fan-out, the media sweep and the gateway ask it."""

    async def newest(
        self, author_ids: Sequence[int], *, limit: int, before: int | None = None
    ) -> list[int]:
        """The newest `limit` live posts of these authors (older than `before`), newest first."""
        ...

    async def posts(self, post_ids: Sequence[int]) -> list[PostRead]:
        """These posts in the order asked, the missing and deleted left out."""
        ...

    async def newest_page(
        self, author_ids: Sequence[int], *, limit: int, before: int | None, viewer_id: int
    ) -> PostsPage:
        """One page of the newest live posts of these authors (older than `before`), newest
        first, with their counts and the viewer's likes; `next_cursor` set when older ones
        remain (a feed cursor: photogram_common.cursors of the page's last post)."""
        ...

    async def earlier_use(self, caller: Identity, key: str) -> IdempotencyKeyRead | None:
        """The caller's earlier upload with this Idempotency-Key, within the window."""
        ...

    async def counts(self, post_ids: Sequence[int], *, viewer_id: int) -> list[CountsRead]:
        """The live posts' counts with their versions, and whether the viewer likes each."""
        ...

    async def liked(self, user_id: int) -> tuple[list[int], bool]:
        """The user's liked posts, newest post first, up to post-service's cap; and True
        when that is all of them."""
        ...

    async def holders(self, media_ids: Sequence[int]) -> dict[int, int]:
        """Media ID to the live post that holds it; media no live post holds are left out."""
        ...


class FeedCache(Protocol):
    """feed-service's cache of post bodies."""

    async def forget(self, post_id: int, *, by: Identity | None = None) -> None:
        """A post was deleted: no page shows it from now on."""
        ...


class MediaLibrary(Protocol):
    """media-service, as an upload and an avatar use it."""

    async def store(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> UploadRead:
        """Parse, process and store an upload's photos: pending media, and a short-lived
        signed claim on them that post-service checks on its own to make their post."""
        ...

    async def digest(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> str:
        """The upload's request hash, storing nothing."""
        ...

    async def set_avatar(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> AvatarRead:
        """Make the upload's one image the caller's avatar, replacing the old one."""
        ...

    async def drop_avatar(self, caller: Identity) -> None:
        """Delete the caller's avatar and its bytes (none: nothing happens)."""
        ...


class UserDirectory(Protocol):
    """user-service, as the gateway names the people on its pages and records an avatar."""

    async def batch(self, caller: Identity, user_ids: Sequence[str]) -> list[UserRead]:
        """These users as public Users, in the order asked; unknown IDs and accounts gone
        are left out."""
        ...

    async def set_avatar(self, caller: Identity, avatar: AvatarRead | None) -> UserMeRead:
        """Record the caller's avatar as media-service made it (None: no avatar)."""
        ...
