"""SQL for notifications. Functions take a session; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.models import deleted_posts, notifications
from photogram_common.db import insert_ignoring_conflicts

ONCE = ("recipient_id", "actor_id", "type", "post_id")


async def add(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Record a notification unless one for the same (recipient, actor, type, post) is
    there; True when it was recorded."""
    insert = insert_ignoring_conflicts(session, notifications, on=ONCE)
    found = await session.execute(insert.values(**values).returning(notifications.c.id))
    return found.first() is not None


async def remove(
    session: AsyncSession,
    *,
    recipient_id: int,
    actor_id: int,
    type_: str,
    post_id: int,
    comment_id: int | None = None,
) -> None:
    query = delete(notifications).where(
        notifications.c.recipient_id == recipient_id,
        notifications.c.actor_id == actor_id,
        notifications.c.type == type_,
        notifications.c.post_id == post_id,
    )
    if comment_id is not None:
        query = query.where(notifications.c.comment_id == comment_id)
    await session.execute(query)


async def remove_of_user(session: AsyncSession, user_id: int) -> None:
    await session.execute(
        delete(notifications).where(
            (notifications.c.actor_id == user_id) | (notifications.c.recipient_id == user_id)
        )
    )


async def remove_of_post(session: AsyncSession, post_id: int) -> None:
    await session.execute(delete(notifications).where(notifications.c.post_id == post_id))


async def mark_post_deleted(session: AsyncSession, post_id: int, *, at: datetime) -> None:
    insert = insert_ignoring_conflicts(session, deleted_posts, on=("post_id",))
    await session.execute(insert.values(post_id=post_id, deleted_at=at))


async def post_deleted(session: AsyncSession, post_id: int) -> bool:
    query = select(deleted_posts.c.post_id).where(deleted_posts.c.post_id == post_id)
    return (await session.execute(query)).first() is not None


async def purge_deleted_posts(session: AsyncSession, *, before: datetime, limit: int) -> int:
    oldest = (
        select(deleted_posts.c.post_id)
        .where(deleted_posts.c.deleted_at < before)
        .order_by(deleted_posts.c.deleted_at)
        .limit(limit)
    )
    result: Any = await session.execute(
        delete(deleted_posts).where(deleted_posts.c.post_id.in_(oldest))
    )
    return int(result.rowcount or 0)


async def page(
    session: AsyncSession, *, recipient_id: int, before: int | None, limit: int
) -> list[RowMapping]:
    """The recipient's notifications, newest first."""
    query = (
        select(notifications)
        .where(notifications.c.recipient_id == recipient_id)
        .order_by(notifications.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(notifications.c.id < before)
    return list((await session.execute(query)).mappings().all())


async def unread_count(session: AsyncSession, recipient_id: int) -> int:
    query = select(func.count()).where(
        notifications.c.recipient_id == recipient_id, notifications.c.read.is_(False)
    )
    return int((await session.execute(query)).scalar_one())


async def mark_read(session: AsyncSession, *, recipient_id: int, up_to: int) -> None:
    await session.execute(
        update(notifications)
        .where(
            notifications.c.recipient_id == recipient_id,
            notifications.c.id <= up_to,
            notifications.c.read.is_(False),
        )
        .values(read=True)
    )
