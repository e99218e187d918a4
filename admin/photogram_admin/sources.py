"""The follow graph and the posts read straight from their owners' databases, through the
owners' own repositories: the admin works while the services are down, and never queues
behind their traffic. Only the reads the admin's use cases make are served."""

from __future__ import annotations

from collections.abc import Sequence

from photogram_contracts.identity import Identity
from photogram_contracts.internal import CountsRead, IdempotencyKeyRead
from photogram_contracts.peers import Followee, FollowerPage
from photogram_contracts.schemas import PostRead, PostsPage

import post_service.repository as post_repository
import user_service.repository as user_repository
from photogram_common.db import Database


def _not_served(what: str) -> NotImplementedError:
    return NotImplementedError(f"{what} is not read by photogram-admin")


class DatabaseFollowers:
    """user-service's follow graph (the `Followers` port) on its database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def followees(self, user_id: int) -> list[Followee]:
        async with self.database.single_statement() as session:
            found = await user_repository.followees(session, user_id=user_id)
        return [Followee(user_id=u, followers_count=n, pulled=p) for u, n, p in found]

    async def pulled(self, author_id: int) -> bool:
        async with self.database.single_statement() as session:
            return bool(await user_repository.get_pulled(session, author_id))

    async def page(
        self, author_id: int, *, after: int, limit: int, active_days: int | None = None
    ) -> FollowerPage:
        raise _not_served("a follower page")

    async def seen(self, reader: Identity) -> None:
        raise _not_served("last-active")


class DatabasePostCatalog:
    """post-service's posts (the `PostCatalog` port) on its database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def newest(
        self, author_ids: Sequence[int], *, limit: int, before: int | None = None
    ) -> list[int]:
        async with self.database.single_statement() as session:
            return await post_repository.newest_of_authors(
                session, author_ids, limit=limit, before=before
            )

    async def holders(self, media_ids: Sequence[int]) -> dict[int, int]:
        if not media_ids:
            return {}
        async with self.database.single_statement() as session:
            return await post_repository.live_holders(session, media_ids)

    async def posts(self, post_ids: Sequence[int]) -> list[PostRead]:
        raise _not_served("a post body")

    async def newest_page(
        self, author_ids: Sequence[int], *, limit: int, before: int | None, viewer_id: int
    ) -> PostsPage:
        raise _not_served("a feed page")

    async def earlier_use(self, caller: Identity, key: str) -> IdempotencyKeyRead | None:
        raise _not_served("an idempotency key")

    async def counts(self, post_ids: Sequence[int], *, viewer_id: int) -> list[CountsRead]:
        raise _not_served("a page's counts")

    async def liked(self, user_id: int) -> tuple[list[int], bool]:
        raise _not_served("a liked set")
