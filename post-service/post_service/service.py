"""post-service use cases: create, read, delete, list, hydrate, and rebuild inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import RowMapping

from photogram_common.clients import ServiceClient
from photogram_common.cursors import decode_cursor, encode_cursor
from photogram_common.db import Database
from photogram_common.events import PostCreated, PostDeleted
from photogram_common.identity import Identity
from photogram_common.ids import IdGenerator, parse_id
from photogram_common.outbox import Outbox
from photogram_common.problems import Problem
from photogram_common.schemas import AuthorRead, MediaRead, PostRead, PostsPage
from photogram_common.timeutil import to_rfc3339, utcnow
from post_service import repository as repo
from post_service.schemas import PostCreate


def post_read(row: RowMapping, media: list[dict[str, Any]]) -> PostRead:
    return PostRead(
        post_id=str(row["id"]),
        user_id=str(row["user_id"]),
        author=AuthorRead(user_id=str(row["user_id"]), username=row["author_username"]),
        caption=row["caption"],
        location=row["location"],
        created_at=to_rfc3339(row["created_at"]),
        media=[MediaRead.model_validate(m) for m in media],
    )


def _not_found() -> Problem:
    return Problem(404, "No such post.", title="Not found")


def _invalid_media(detail: str) -> Problem:
    return Problem(
        422,
        detail,
        title="Validation failed",
        extra={"errors": [{"loc": ["body", "media_ids"], "msg": detail, "type": "value_error"}]},
    )


@dataclass
class PostService:
    database: Database
    outbox: Outbox
    ids: IdGenerator
    media: ServiceClient

    async def _owned_ready_media(
        self, caller: Identity, media_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        parsed = [parse_id(m) for m in media_ids]
        if None in parsed or len(set(parsed)) != len(parsed):
            raise _invalid_media("Media IDs must be distinct, valid IDs.")
        found = await self.media.call(
            "POST", "/internal/media/lookup", identity=caller, json={"media_ids": list(media_ids)}
        )
        by_id = {m["media_id"]: m for m in found["items"]}
        for media_id in media_ids:
            item = by_id.get(media_id)
            if item is None or item["user_id"] != str(caller.user_id):
                raise _invalid_media(f"Media {media_id} does not exist or is not yours.")
        return [by_id[m] for m in media_ids]

    async def create(self, caller: Identity, data: PostCreate) -> PostRead:
        media = await self._owned_ready_media(caller, data.media_ids)
        values = {
            "id": self.ids.next_id(),
            "user_id": caller.user_id,
            "author_username": caller.username,
            "caption": data.caption,
            "location": data.location,
            "created_at": utcnow(),
        }
        async with self.database.transaction() as session:
            await repo.insert_post(session, values=values, media=media)
            await self.outbox.add(
                session, PostCreated(post_id=values["id"], author_id=caller.user_id)
            )
            row = await repo.get_post(session, values["id"])
        self.outbox.notify()
        assert row is not None
        return post_read(row, media)

    async def get(self, post_id: int) -> PostRead:
        async with self.database.transaction() as session:
            rows = await repo.live_posts(session, [post_id])
            media = await repo.media_of(session, [post_id])
        if not rows:
            raise _not_found()
        return post_read(rows[0], media[post_id])

    async def delete(self, caller: Identity, post_id: int) -> None:
        async with self.database.transaction() as session:
            row = await repo.get_post(session, post_id)
            if row is None or row["deleted_at"] is not None:
                raise _not_found()
            if row["user_id"] != caller.user_id:
                raise Problem(403, "Only the author can delete a post.", title="Forbidden")
            await repo.mark_deleted(session, post_id=post_id, at=utcnow())
            await self.outbox.add(session, PostDeleted(post_id=post_id, author_id=caller.user_id))
        self.outbox.notify()

    async def batch(self, post_ids: Sequence[int]) -> list[PostRead]:
        if not post_ids:
            return []
        async with self.database.transaction() as session:
            rows = await repo.live_posts(session, post_ids)
            media = await repo.media_of(session, [r["id"] for r in rows])
        by_id = {r["id"]: post_read(r, media[r["id"]]) for r in rows}
        return [by_id[p] for p in post_ids if p in by_id]

    async def user_posts(self, *, user_id: int, cursor: str | None, limit: int) -> PostsPage:
        before = decode_cursor(cursor, arity=1)[0] if cursor else None
        async with self.database.transaction() as session:
            rows = await repo.user_posts(session, user_id=user_id, before=before, limit=limit + 1)
            page = rows[:limit]
            media = await repo.media_of(session, [r["id"] for r in page])
        return PostsPage(
            items=[post_read(r, media[r["id"]]) for r in page],
            next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None,
        )

    async def newest_posts_of(
        self, author_ids: Sequence[int], *, limit: int, before: int | None = None
    ) -> list[int]:
        """The newest `limit` live posts across authors older than `before`, one query."""
        async with self.database.transaction() as session:
            return await repo.newest_of_authors(session, author_ids, limit=limit, before=before)
