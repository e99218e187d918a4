"""post-service use cases: create, read, delete, list, hydrate, and rebuild inputs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from photogram_contracts.events import PostCreated, PostDeleted
from photogram_contracts.identity import Identity
from photogram_contracts.schemas import AuthorRead, MediaRead, PostRead, PostsPage, PostViewerRead
from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from photogram_common.cursors import decode_cursor, encode_cursor
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.media_claims import InvalidClaim, verify_claim
from photogram_common.outbox import Outbox
from photogram_common.problems import Problem
from photogram_common.timeutil import to_rfc3339, utcnow
from post_service import repository as repo
from post_service.schemas import IdempotencyKeyRead, PostCreate

log = logging.getLogger(__name__)
PURGE_BATCH = 5000


def post_read(
    row: RowMapping | Mapping[str, Any],
    media: list[dict[str, Any]],
    *,
    liked: set[int] | None = None,
) -> PostRead:
    """A post as the API shows it; with `liked` (the viewer's likes among the page's
    posts), the viewer's state too."""
    return PostRead(
        post_id=str(row["id"]),
        user_id=str(row["user_id"]),
        author=AuthorRead(user_id=str(row["user_id"]), username=row["author_username"]),
        caption=row["caption"],
        location=row["location"],
        created_at=to_rfc3339(row["created_at"]),
        media=[MediaRead.model_validate(m) for m in media],
        likes_count=row.get("likes_count") or 0,
        comments_count=row.get("comments_count") or 0,
        viewer=None if liked is None else PostViewerRead(liked=row["id"] in liked),
    )


async def _liked(
    session: AsyncSession, viewer: Identity | None, post_ids: list[int]
) -> set[int] | None:
    """The viewer's likes among the posts (None without a user to ask for)."""
    if viewer is None or viewer.user_id <= 0:
        return None
    return await repo.liked_among(session, user_id=viewer.user_id, post_ids=post_ids)


def _replayed(earlier: IdempotencyKeyRead, request_hash: str | None) -> PostRead:
    """The first answer, for a retry of the same upload; a 422 for a different one."""
    if earlier.request_hash != request_hash:
        raise _key_reused()
    return earlier.post


def _not_found() -> Problem:
    return Problem(404, "No such post.", title="Not found")


def _invalid_claim(detail: str) -> Problem:
    return Problem(
        422,
        detail,
        title="Validation failed",
        extra={"errors": [{"loc": ["body", "claim"], "msg": detail, "type": "value_error"}]},
    )


def _key_reused() -> Problem:
    detail = "This Idempotency-Key was used for a different upload."
    errors = [{"loc": ["header", "Idempotency-Key"], "msg": detail, "type": "idempotency_key"}]
    return Problem(422, detail, title="Validation failed", extra={"errors": errors})


class _KeyTaken(Exception):
    """Another request with the same idempotency key committed its post first."""


@dataclass
class PostService:
    database: Database
    outbox: Outbox
    ids: IdGenerator
    # The internal secret media-service signs its claims with (photogram_common.media_claims).
    claim_secret: str
    idempotency_window: timedelta = timedelta(hours=24)

    def _claimed_media(self, caller: Identity, claim: str) -> list[dict[str, Any]]:
        """The media the caller's claim names, checked here: signed by media-service, the
        caller's, unexpired. Nothing is asked of media-service."""
        try:
            media = verify_claim(claim, secret=self.claim_secret, owner_id=caller.user_id)
        except InvalidClaim as exc:
            raise _invalid_claim(f"The media claim is not valid ({exc}).") from None
        return [m.model_dump() for m in media]

    async def create(self, caller: Identity, data: PostCreate) -> tuple[PostRead, bool]:
        """Make the post of the media the claim names, with its event, in one transaction;
        with an idempotency key, at most once per key and user: a key used before (within
        the window) answers the first post again. Returns (post, replayed).

        Nothing is undone here when it fails: media no post holds are media-service's to
        delete (its sweeper asks which live posts hold them once their claim ran out)."""
        key = data.idempotency_key
        if key is not None:
            earlier = await self.earlier_use(caller, key)
            if earlier is not None:
                return _replayed(earlier, data.request_hash), True
        media = self._claimed_media(caller, data.claim)
        post_id = self.ids.next_id()
        values: dict[str, Any] = {
            "id": post_id,
            "user_id": caller.user_id,
            "author_username": caller.username,
            "caption": data.caption,
            "location": data.location,
            "created_at": utcnow(),
        }
        post = post_read(values, media, liked=set())
        try:
            async with self.database.transaction() as session:
                await repo.insert_post(session, values=values, media=media)
                await self.outbox.add(
                    session, PostCreated(post_id=post_id, author_id=caller.user_id)
                )
                if key is not None:
                    now = values["created_at"]
                    use = {
                        "user_id": caller.user_id,
                        "key": key,
                        "request_hash": data.request_hash,
                        "post_id": post_id,
                        "response": post.model_dump(mode="json"),
                        "created_at": now,
                    }
                    if not await repo.insert_key(
                        session, values=use, expired_before=now - self.idempotency_window
                    ):
                        raise _KeyTaken  # rolls the post back
        except IntegrityError:
            # post_media.media_id is unique: a claim whose media another post holds.
            raise _invalid_claim("The media claim names media of another post.") from None
        except _KeyTaken:
            assert key is not None
            # Another request with this key made its post first: that one answers.
            earlier = await self.earlier_use(caller, key)
            if earlier is None:  # expired meanwhile: only a window of zero allows that
                raise Problem(409, "Retry the upload.", title="Conflict") from None
            return _replayed(earlier, data.request_hash), True
        self.outbox.notify()
        return post, False

    async def holders(self, media_ids: Sequence[int]) -> dict[int, int]:
        """Media ID to the live post that holds it (media-service's sweep asks)."""
        if not media_ids:
            return {}
        async with self.database.transaction() as session:
            return await repo.live_holders(session, media_ids)

    async def earlier_use(self, caller: Identity, key: str) -> IdempotencyKeyRead | None:
        """The caller's use of this key within the window, if any."""
        since = utcnow() - self.idempotency_window
        async with self.database.transaction() as session:
            row = await repo.find_key(session, user_id=caller.user_id, key=key, since=since)
        if row is None:
            return None
        return IdempotencyKeyRead(
            request_hash=row["request_hash"], post=PostRead.model_validate(row["response"])
        )

    async def purge_idempotency_keys(self) -> int:
        """Forget keys older than the window, in batches; return how many went."""
        before = utcnow() - self.idempotency_window
        return await self.database.purge_in_batches(
            lambda session, limit: repo.purge_keys(session, before=before, limit=limit),
            batch=PURGE_BATCH,
        )

    async def get(self, post_id: int, *, viewer: Identity | None = None) -> PostRead:
        async with self.database.transaction() as session:
            rows = await repo.live_posts(session, [post_id])
            if not rows:
                raise _not_found()
            media = await repo.media_of(session, [post_id])
            liked = await _liked(session, viewer, [post_id])
        return post_read(rows[0], media[post_id], liked=liked)

    async def delete(self, caller: Identity, post_id: int) -> None:
        async with self.database.transaction() as session:
            row = await repo.get_post(session, post_id)
            if row is None or row["deleted_at"] is not None:
                raise _not_found()
            if row["user_id"] != caller.user_id:
                raise Problem(403, "Only the author can delete a post.", title="Forbidden")
            await self._delete_in(session, post_id=post_id, author_id=caller.user_id)
        self.outbox.notify()

    async def _delete_in(self, session: AsyncSession, *, post_id: int, author_id: int) -> None:
        """Delete a post, its likes and comments, with its event (its media go by it)."""
        await repo.mark_deleted(session, post_id=post_id, at=utcnow())
        await repo.delete_engagement(session, post_id)
        media_ids = await repo.media_ids_of(session, post_id)
        deleted = PostDeleted(post_id=post_id, author_id=author_id, media_ids=media_ids)
        await self.outbox.add(session, deleted)

    async def remove_user(self, user_id: int, *, batch: int = 100) -> None:
        """A deleted account's posts, each deleted as its author would (with its event), a
        batch per transaction: a crash half-way resumes on the event's next delivery."""
        while True:
            async with self.database.transaction() as session:
                found = await repo.live_post_ids_of(session, user_id, limit=batch)
                for post_id in found:
                    await self._delete_in(session, post_id=post_id, author_id=user_id)
            self.outbox.notify()
            if len(found) < batch:
                return

    async def batch(self, post_ids: Sequence[int]) -> list[PostRead]:
        if not post_ids:
            return []
        async with self.database.transaction() as session:
            rows = await repo.live_posts(session, post_ids)
            media = await repo.media_of(session, [r["id"] for r in rows])
        by_id = {r["id"]: post_read(r, media[r["id"]]) for r in rows}
        return [by_id[p] for p in post_ids if p in by_id]

    async def user_posts(
        self, *, user_id: int, cursor: str | None, limit: int, viewer: Identity | None = None
    ) -> PostsPage:
        before = decode_cursor(cursor, arity=1)[0] if cursor else None
        async with self.database.transaction() as session:
            rows = await repo.user_posts(session, user_id=user_id, before=before, limit=limit + 1)
            page = rows[:limit]
            ids = [r["id"] for r in page]
            media = await repo.media_of(session, ids)
            liked = await _liked(session, viewer, ids)
        return PostsPage(
            items=[post_read(r, media[r["id"]], liked=liked) for r in page],
            next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None,
        )

    async def newest_page(
        self, author_ids: Sequence[int], *, limit: int, before: int | None, viewer_id: int
    ) -> PostsPage:
        """The newest `limit` live posts of these authors older than `before`, with their
        counts and the viewer's likes, in one transaction; the cursor is the feed's."""
        async with self.database.transaction() as session:
            ids = await repo.newest_of_authors(session, author_ids, limit=limit + 1, before=before)
            page = ids[:limit]
            if not page:
                return PostsPage(items=[], next_cursor=None)
            rows = await repo.live_posts(session, page)
            media = await repo.media_of(session, page)
            liked = await repo.liked_among(session, user_id=viewer_id, post_ids=page)
        by_id = {r["id"]: post_read(r, media[r["id"]], liked=liked) for r in rows}
        return PostsPage(
            items=[by_id[p] for p in page if p in by_id],
            next_cursor=encode_cursor(page[-1]) if len(ids) > limit else None,
        )

    async def newest_posts_of(
        self, author_ids: Sequence[int], *, limit: int, before: int | None = None
    ) -> list[int]:
        """The newest `limit` live posts across authors older than `before`, one query
        (no BEGIN and COMMIT around it: every timeline rebuild asks)."""
        async with self.database.single_statement() as session:
            return await repo.newest_of_authors(session, author_ids, limit=limit, before=before)
