"""Notifications, made and undone by events (docs/decisions.md, "Notifications").

Each effect is idempotent, so a redelivered event changes nothing: a notification is
recorded once per (recipient, actor, type, post), and undoing deletes it. A like or a
comment event met after its post's deletion (another topic, another order) finds the post
in `deleted_posts` and makes none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from photogram_contracts.events import (
    CommentCreated,
    CommentDeleted,
    FollowCreated,
    FollowDeleted,
    LikeCreated,
    LikeDeleted,
    PostDeleted,
    UserDeleted,
)
from photogram_contracts.internal import NotificationRecord, NotificationRecordsPage
from sqlalchemy import RowMapping

from notification_service import repository as repo
from photogram_common.cursors import decode_cursor, encode_cursor
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.timeutil import to_rfc3339, utcnow

PURGE_BATCH = 5000


def record(row: RowMapping) -> NotificationRecord:
    return NotificationRecord(
        notification_id=str(row["id"]),
        type=row["type"],
        actor_id=str(row["actor_id"]),
        post_id=str(row["post_id"]) if row["post_id"] else None,
        comment_id=None if row["comment_id"] is None else str(row["comment_id"]),
        created_at=to_rfc3339(row["created_at"]),
        read=row["read"],
    )


@dataclass
class Notifications:
    database: Database
    ids: IdGenerator

    async def _add(
        self,
        *,
        recipient_id: int,
        actor_id: int,
        type_: str,
        post_id: int = 0,
        comment_id: int | None = None,
    ) -> None:
        if recipient_id == actor_id:
            return  # never for acting on oneself
        values = {
            "id": self.ids.next_id(),
            "recipient_id": recipient_id,
            "actor_id": actor_id,
            "type": type_,
            "post_id": post_id,
            "comment_id": comment_id,
            "created_at": utcnow(),
            "read": False,
        }
        async with self.database.transaction() as session:
            if post_id and await repo.post_deleted(session, post_id):
                return
            await repo.add(session, values)

    async def _remove(
        self,
        *,
        recipient_id: int,
        actor_id: int,
        type_: str,
        post_id: int = 0,
        comment_id: int | None = None,
    ) -> None:
        async with self.database.transaction() as session:
            await repo.remove(
                session,
                recipient_id=recipient_id,
                actor_id=actor_id,
                type_=type_,
                post_id=post_id,
                comment_id=comment_id,
            )

    async def on_follow(self, event: FollowCreated) -> None:
        await self._add(recipient_id=event.followee_id, actor_id=event.follower_id, type_="follow")

    async def on_unfollow(self, event: FollowDeleted) -> None:
        await self._remove(
            recipient_id=event.followee_id, actor_id=event.follower_id, type_="follow"
        )

    async def on_like(self, event: LikeCreated) -> None:
        await self._add(
            recipient_id=event.author_id,
            actor_id=event.user_id,
            type_="like",
            post_id=event.post_id,
        )

    async def on_unlike(self, event: LikeDeleted) -> None:
        await self._remove(
            recipient_id=event.author_id,
            actor_id=event.user_id,
            type_="like",
            post_id=event.post_id,
        )

    async def on_comment(self, event: CommentCreated) -> None:
        await self._add(
            recipient_id=event.author_id,
            actor_id=event.user_id,
            type_="comment",
            post_id=event.post_id,
            comment_id=event.comment_id,
        )

    async def on_comment_deleted(self, event: CommentDeleted) -> None:
        # Only the notification of this comment: one of the actor's other comments on the
        # post may be what it shows (it shows the first, see docs/api.md).
        await self._remove(
            recipient_id=event.author_id,
            actor_id=event.user_id,
            type_="comment",
            post_id=event.post_id,
            comment_id=event.comment_id,
        )

    async def on_post_deleted(self, event: PostDeleted) -> None:
        async with self.database.transaction() as session:
            await repo.mark_post_deleted(session, event.post_id, at=utcnow())
            await repo.remove_of_post(session, event.post_id)

    async def on_user_deleted(self, event: UserDeleted) -> None:
        """A deleted account's notifications, and those it made for others."""
        async with self.database.transaction() as session:
            await repo.remove_of_user(session, event.user_id)

    async def page(
        self, recipient_id: int, *, cursor: str | None, limit: int
    ) -> NotificationRecordsPage:
        before = decode_cursor(cursor, arity=1)[0] if cursor else None
        async with self.database.transaction() as session:
            rows = await repo.page(
                session, recipient_id=recipient_id, before=before, limit=limit + 1
            )
        page = rows[:limit]
        return NotificationRecordsPage(
            items=[record(r) for r in page],
            next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None,
        )

    async def unread_count(self, recipient_id: int) -> int:
        async with self.database.transaction() as session:
            return await repo.unread_count(session, recipient_id)

    async def mark_read(self, recipient_id: int, *, up_to: int) -> None:
        async with self.database.transaction() as session:
            await repo.mark_read(session, recipient_id=recipient_id, up_to=up_to)

    async def purge_deleted_posts(self, *, older_than: timedelta) -> int:
        before = utcnow() - older_than
        return await self.database.purge_in_batches(
            lambda session, limit: repo.purge_deleted_posts(session, before=before, limit=limit),
            batch=PURGE_BATCH,
        )
