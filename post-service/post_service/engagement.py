"""Likes and comments: their rows and the post's counts change in one transaction, with
the change's event in the outbox (docs/decisions.md, "Likes and comments")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from photogram_contracts.events import (
    CommentCreated,
    CommentDeleted,
    LikeCreated,
    LikeDeleted,
)
from photogram_contracts.identity import Identity
from photogram_contracts.internal import CountsRead
from photogram_contracts.schemas import (
    AuthorRead,
    CommentRead,
    CommentsPage,
    LikeRead,
)
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from photogram_common.cursors import decode_cursor, encode_cursor
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.outbox import Outbox
from photogram_common.problems import Problem
from photogram_common.timeutil import to_rfc3339, utcnow
from post_service import repository as repo


def _no_post() -> Problem:
    return Problem(404, "No such post.", title="Not found")


def _no_comment() -> Problem:
    return Problem(404, "No such comment.", title="Not found")


def comment_read(row: RowMapping) -> CommentRead:
    return CommentRead(
        comment_id=str(row["id"]),
        post_id=str(row["post_id"]),
        author=AuthorRead(user_id=str(row["user_id"]), username=row["author_username"]),
        text=row["text"],
        created_at=to_rfc3339(row["created_at"]),
    )


def _counts(counts: RowMapping) -> dict[str, int]:
    return {
        "author_id": counts["user_id"],
        "likes_count": counts["likes_count"],
        "comments_count": counts["comments_count"],
        "counts_version": counts["counts_version"],
    }


@dataclass
class Engagement:
    database: Database
    outbox: Outbox
    ids: IdGenerator
    # The feed's liked set of a reader holds at most this many of their likes.
    liked_set_cap: int = 5000

    async def like(self, caller: Identity, post_id: int) -> LikeRead:
        """Like the post; liking it again changes nothing."""
        return await self._set_like(caller.user_id, post_id, liked=True)

    async def unlike(self, caller: Identity, post_id: int) -> LikeRead:
        """Take a like back; unliking a post not liked changes nothing."""
        return await self._set_like(caller.user_id, post_id, liked=False)

    async def _set_like(self, user_id: int, post_id: int, *, liked: bool) -> LikeRead:
        async with self.database.transaction() as session:
            changed, counts = await self._like_in(session, user_id, post_id, liked=liked)
            if counts is None:
                raise _no_post()  # rolls the change back
        if changed:
            self.outbox.notify()
        return LikeRead(liked=liked, likes_count=counts["likes_count"])

    async def _like_in(
        self, session: AsyncSession, user_id: int, post_id: int, *, liked: bool
    ) -> tuple[bool, RowMapping | None]:
        """Like or unlike in the caller's transaction: whether it changed anything, and the
        live post's counts after it (None: no such live post, and no event written)."""
        if liked:
            changed = await repo.add_like(
                session, post_id=post_id, user_id=user_id, like_id=self.ids.next_id()
            )
        else:
            changed = await repo.remove_like(session, post_id=post_id, user_id=user_id)
        if not changed:
            return False, await repo.live_counts(session, post_id)
        counts = await repo.bump_counts(session, post_id, likes_by=1 if liked else -1)
        if counts is not None:
            kind = LikeCreated if liked else LikeDeleted
            await self.outbox.add(
                session, kind(post_id=post_id, user_id=user_id, **_counts(counts))
            )
        return True, counts

    async def likers(
        self, post_id: int, *, cursor: str | None, limit: int
    ) -> tuple[list[int], str | None]:
        """The post's likers, newest like first, and the next page's cursor."""
        before = decode_cursor(cursor, arity=1)[0] if cursor else None
        async with self.database.transaction() as session:
            if await repo.live_counts(session, post_id) is None:
                raise _no_post()
            rows = await repo.likers(session, post_id=post_id, before=before, limit=limit + 1)
        page = rows[:limit]
        more = len(rows) > limit
        return [r["user_id"] for r in page], encode_cursor(page[-1]["id"]) if more else None

    async def comment(self, caller: Identity, post_id: int, text: str) -> CommentRead:
        values: dict[str, Any] = {
            "id": self.ids.next_id(),
            "post_id": post_id,
            "user_id": caller.user_id,
            "author_username": caller.username,
            "text": text,
            "created_at": utcnow(),
        }
        async with self.database.transaction() as session:
            counts = await repo.bump_counts(session, post_id, comments_by=1)
            if counts is None:
                raise _no_post()
            await repo.insert_comment(session, values)
            event = CommentCreated(
                post_id=post_id, user_id=caller.user_id, comment_id=values["id"], **_counts(counts)
            )
            await self.outbox.add(session, event)
        self.outbox.notify()
        return CommentRead(
            comment_id=str(values["id"]),
            post_id=str(post_id),
            author=AuthorRead(user_id=str(caller.user_id), username=caller.username),
            text=text,
            created_at=to_rfc3339(values["created_at"]),
        )

    async def comments(self, post_id: int, *, cursor: str | None, limit: int) -> CommentsPage:
        """The post's comments, oldest first."""
        after = decode_cursor(cursor, arity=1)[0] if cursor else None
        async with self.database.transaction() as session:
            if await repo.live_counts(session, post_id) is None:
                raise _no_post()
            rows = await repo.comments_of(session, post_id=post_id, after=after, limit=limit + 1)
        page = rows[:limit]
        return CommentsPage(
            items=[comment_read(r) for r in page],
            next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None,
        )

    async def get_comment(self, comment_id: int) -> CommentRead:
        async with self.database.transaction() as session:
            row = await repo.get_comment(session, comment_id)
            if row is None or await repo.live_counts(session, row["post_id"]) is None:
                raise _no_comment()
        return comment_read(row)

    async def delete_comment(self, caller: Identity, comment_id: int) -> None:
        """Delete a comment: its author or the post's author may."""
        async with self.database.transaction() as session:
            row = await repo.get_comment(session, comment_id)
            if row is None:
                raise _no_comment()
            post = await repo.live_counts(session, row["post_id"])
            if post is None:
                raise _no_comment()
            if caller.user_id not in (row["user_id"], post["user_id"]):
                raise Problem(
                    403,
                    "Only the comment's author or the post's author can delete it.",
                    title="Forbidden",
                )
            if not await self._delete_comment_in(session, row):
                raise _no_comment()  # deleted by a concurrent request, or its post
        self.outbox.notify()

    async def _delete_comment_in(self, session: AsyncSession, row: RowMapping) -> bool:
        """Delete a comment, with its post's count and its event; False when it was gone."""
        if not await repo.delete_comment(session, row["id"]):
            return False
        counts = await repo.bump_counts(session, row["post_id"], comments_by=-1)
        if counts is None:
            return False
        event = CommentDeleted(
            post_id=row["post_id"], user_id=row["user_id"], comment_id=row["id"], **_counts(counts)
        )
        await self.outbox.add(session, event)
        return True

    async def remove_user(self, user_id: int, *, batch: int = 200) -> None:
        """A deleted account's likes and comments, each with its event, so every count it
        touched moves by one; a batch per transaction, so a crash half-way resumes where
        it stopped when the event is delivered again."""
        while True:
            async with self.database.transaction() as session:
                liked = await repo.liked_posts(session, user_id=user_id, limit=batch)
                for post_id in liked:
                    await self._like_in(session, user_id, post_id, liked=False)
            self.outbox.notify()
            if len(liked) < batch:
                break
        while True:
            async with self.database.transaction() as session:
                made = await repo.comments_by(session, user_id, limit=batch)
                for row in made:
                    await self._delete_comment_in(session, row)
            self.outbox.notify()
            if len(made) < batch:
                break

    async def counts(self, post_ids: Sequence[int], *, viewer_id: int) -> list[CountsRead]:
        """The live posts' counts and versions, and the viewer's likes among them."""
        if not post_ids:
            return []
        async with self.database.transaction() as session:
            rows = await repo.counts_of(session, post_ids)
            liked = await repo.liked_among(session, user_id=viewer_id, post_ids=post_ids)
        return [
            CountsRead(
                post_id=str(r["id"]),
                likes_count=r["likes_count"],
                comments_count=r["comments_count"],
                counts_version=r["counts_version"],
                liked=r["id"] in liked,
            )
            for r in rows
        ]

    async def liked_posts(self, user_id: int) -> tuple[list[int], bool]:
        """The user's liked posts, newest post first, up to the cap; and whether that is all
        (one query, no BEGIN and COMMIT around it: every first read asks)."""
        async with self.database.single_statement() as session:
            found = await repo.liked_posts(session, user_id=user_id, limit=self.liked_set_cap + 1)
        return found[: self.liked_set_cap], len(found) <= self.liked_set_cap
