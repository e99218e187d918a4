"""SQL for media and avatars. Functions take a session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, RowMapping, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from media_service.models import ATTACHED, DELETING, PENDING, avatars, media


async def insert_media(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await session.execute(media.insert(), list(rows))


async def visible_media(session: AsyncSession, media_ids: Sequence[int]) -> list[RowMapping]:
    """The rows of these media that are not being deleted."""
    query = select(media).where(media.c.id.in_(media_ids), media.c.status != DELETING)
    return list((await session.execute(query)).mappings().all())


async def visible_variants(session: AsyncSession, media_id: int) -> dict[str, Any] | None:
    query = select(media.c.variants).where(media.c.id == media_id, media.c.status != DELETING)
    row = (await session.execute(query)).first()
    return None if row is None else dict(row.variants)


def of_post(*, author_id: int, post_id: int, media_ids: Sequence[int]) -> ColumnElement[bool]:
    """A post's media: those attached to it, and those it names (a pending row has no
    post_id yet)."""
    claimed = media.c.post_id == post_id
    where = or_(claimed, media.c.id.in_(media_ids)) if media_ids else claimed
    return and_(media.c.user_id == author_id, where)


def with_status(media_ids: Sequence[int], status: str) -> ColumnElement[bool]:
    return and_(media.c.id.in_(media_ids), media.c.status == status)


async def mark_deleting(
    session: AsyncSession, where: ColumnElement[bool], *, at: datetime
) -> list[Row[Any]]:
    """Mark the rows `where` selects deleting in one conditional UPDATE; their ids and
    variants. Two purges never both take a row."""
    result = await session.execute(
        update(media)
        .where(where)
        .values(status=DELETING, status_at=at)
        .returning(media.c.id, media.c.variants)
    )
    return list(result.all())


async def delete_deleting(session: AsyncSession, media_ids: Sequence[int]) -> None:
    await session.execute(delete(media).where(with_status(media_ids, DELETING)))


async def ids_before(
    session: AsyncSession, status: str, cutoff: datetime, *, limit: int
) -> list[int]:
    """The oldest `limit` media in `status` since before `cutoff`."""
    query = (
        select(media.c.id)
        .where(media.c.status == status, media.c.status_at < cutoff)
        .order_by(media.c.status_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def attach(
    session: AsyncSession, media_ids: Sequence[int], *, post_id: int, at: datetime
) -> int:
    """Attach these pending media to the post; how many were still pending."""
    result: Any = await session.execute(
        update(media)
        .where(with_status(media_ids, PENDING))
        .values(status=ATTACHED, post_id=post_id, status_at=at)
    )
    return int(result.rowcount or 0)


async def avatar_of(session: AsyncSession, user_id: int) -> RowMapping | None:
    query = select(avatars).where(avatars.c.user_id == user_id)
    return (await session.execute(query)).mappings().first()


async def delete_avatar(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(avatars).where(avatars.c.user_id == user_id))


async def insert_avatar(
    session: AsyncSession, *, user_id: int, avatar_id: int, variants: dict[str, Any], at: datetime
) -> None:
    await session.execute(
        avatars.insert().values(user_id=user_id, id=avatar_id, variants=variants, created_at=at)
    )


async def avatar_variants(session: AsyncSession, avatar_id: int) -> dict[str, Any] | None:
    query = select(avatars.c.variants).where(avatars.c.id == avatar_id)
    row = (await session.execute(query)).first()
    return None if row is None else dict(row.variants)
