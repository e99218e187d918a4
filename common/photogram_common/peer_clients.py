"""The HTTP adapter of each peer port (photogram_contracts.peers).

The only place an internal URL or body is built: each internal route has exactly one
client here, and its answer is parsed by the schema its owner answers with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from photogram_contracts.identity import Identity
from photogram_contracts.internal import (
    AvatarUpdate,
    CountsPage,
    CountsRead,
    DeliveryRead,
    DigestRead,
    FolloweesRead,
    FollowerIdsPage,
    HoldersRead,
    IdempotencyKeyRead,
    LikedRead,
    PostIdsRead,
    UploadRead,
    UserIdsLookup,
)
from photogram_contracts.peers import Followee, FollowerPage
from photogram_contracts.schemas import (
    AvatarRead,
    PostRead,
    PostsPage,
    UserMeRead,
    UserRead,
    UsersPage,
)

from photogram_common.clients import ServiceClient, raise_for_problem


class HttpFollowers:
    """`Followers` over user-service's internal routes."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def page(
        self, author_id: int, *, after: int, limit: int, active_days: int | None = None
    ) -> FollowerPage:
        params: dict[str, int] = {"after": after, "limit": limit}
        if active_days is not None:
            params["active_days"] = active_days
        found = await self.client.parsed(
            FollowerIdsPage, "GET", f"/internal/users/{author_id}/active-followers", params=params
        )
        return FollowerPage(
            user_ids=[int(i) for i in found.user_ids],
            next_after=None if found.next_after is None else int(found.next_after),
        )

    async def followees(self, user_id: int) -> list[Followee]:
        found = await self.client.parsed(
            FolloweesRead, "GET", f"/internal/users/{user_id}/followees"
        )
        return [
            Followee(user_id=int(f.user_id), followers_count=f.followers_count, pulled=f.pulled)
            for f in found.items
        ]

    async def pulled(self, author_id: int) -> bool:
        found = await self.client.parsed(
            DeliveryRead, "GET", f"/internal/users/{author_id}/delivery"
        )
        return found.pulled

    async def seen(self, reader: Identity) -> None:
        raw = await self.client.send_raw("POST", "/users/me/seen", identity=reader)
        raise_for_problem(self.client.name, raw)


class HttpPostCatalog:
    """`PostCatalog` over post-service's internal routes."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def newest(
        self, author_ids: Sequence[int], *, limit: int, before: int | None = None
    ) -> list[int]:
        body: dict[str, Any] = {"author_ids": [str(a) for a in author_ids], "limit": limit}
        if before is not None:
            body["before"] = str(before)
        found = await self.client.parsed(PostIdsRead, "POST", "/internal/posts/newest", json=body)
        return [int(p) for p in found.post_ids]

    async def posts(self, post_ids: Sequence[int]) -> list[PostRead]:
        if not post_ids:
            return []
        found = await self.client.parsed(
            PostsPage,
            "POST",
            "/internal/posts/batch",
            json={"post_ids": [str(p) for p in post_ids]},
        )
        return found.items

    async def earlier_use(self, caller: Identity, key: str) -> IdempotencyKeyRead | None:
        response = await self.client.request(
            "POST", "/internal/idempotency-keys/search", identity=caller, json={"key": key}
        )
        if response.status_code == 404:
            return None
        raise_for_problem(self.client.name, response)
        return IdempotencyKeyRead.model_validate_json(response.content)

    async def newest_page(
        self, author_ids: Sequence[int], *, limit: int, before: int | None, viewer_id: int
    ) -> PostsPage:
        body: dict[str, Any] = {
            "author_ids": [str(a) for a in author_ids],
            "limit": limit,
            "viewer_id": str(viewer_id),
        }
        if before is not None:
            body["before"] = str(before)
        return await self.client.parsed(PostsPage, "POST", "/internal/posts/newest-page", json=body)

    async def counts(self, post_ids: Sequence[int], *, viewer_id: int) -> list[CountsRead]:
        if not post_ids:
            return []
        body = {"post_ids": [str(p) for p in post_ids], "viewer_id": str(viewer_id)}
        found = await self.client.parsed(CountsPage, "POST", "/internal/posts/counts", json=body)
        return found.items

    async def liked(self, user_id: int) -> tuple[list[int], bool]:
        found = await self.client.parsed(LikedRead, "GET", f"/internal/users/{user_id}/liked")
        return [int(p) for p in found.post_ids], found.complete

    async def holders(self, media_ids: Sequence[int]) -> dict[int, int]:
        if not media_ids:
            return {}
        found = HoldersRead.model_validate(
            await self.client.call(
                "POST",
                "/internal/posts/holders",
                json={"media_ids": [str(m) for m in media_ids]},
            )
        )
        return {int(m): int(p) for m, p in found.holders.items()}


class HttpFeedCache:
    """`FeedCache` over feed-service's internal route."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def forget(self, post_id: int, *, by: Identity | None = None) -> None:
        await self.client.call("POST", f"/internal/posts/{post_id}/deleted", identity=by)


class HttpMediaLibrary:
    """`MediaLibrary` over media-service's internal routes."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def store(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> UploadRead:
        return UploadRead.model_validate_json(
            await self._stream(caller, "/internal/uploads", body, content_type)
        )

    async def digest(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> str:
        found = DigestRead.model_validate_json(
            await self._stream(caller, "/internal/uploads/digest", body, content_type)
        )
        return found.request_hash

    async def set_avatar(
        self, caller: Identity, body: AsyncIterator[bytes], *, content_type: str
    ) -> AvatarRead:
        return AvatarRead.model_validate_json(
            await self._stream(caller, "/internal/avatar", body, content_type, method="PUT")
        )

    async def drop_avatar(self, caller: Identity) -> None:
        await self.client.call("DELETE", "/internal/avatar", identity=caller)

    async def _stream(
        self,
        caller: Identity,
        path: str,
        body: AsyncIterator[bytes],
        content_type: str,
        *,
        method: str = "POST",
    ) -> bytes:
        response = await self.client.request(
            method,
            path,
            identity=caller,
            content=body,
            headers={"content-type": content_type},
            # Receiving the body takes as long as the client takes: bounded by the deadline.
            deadline_only=True,
        )
        raise_for_problem(self.client.name, response)
        return response.content


class HttpUserDirectory:
    """`UserDirectory` over user-service's internal routes."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def batch(self, caller: Identity, user_ids: Sequence[str]) -> list[UserRead]:
        if not user_ids:
            return []
        body = UserIdsLookup(user_ids=list(user_ids))
        found = await self.client.call(
            "POST", "/internal/users/batch", identity=caller, json=body.model_dump()
        )
        return UsersPage.model_validate(found).items

    async def set_avatar(self, caller: Identity, avatar: AvatarRead | None) -> UserMeRead:
        body = AvatarUpdate(avatar=avatar)
        found = await self.client.call(
            "PUT", "/internal/users/me/avatar", identity=caller, json=body.model_dump()
        )
        return UserMeRead.model_validate(found)
