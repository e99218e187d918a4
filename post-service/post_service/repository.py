"""SQL for posts. Functions take a session; the caller owns the transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from photogram_common.db import insert_ignoring_conflicts
from photogram_common.timeutil import utcnow
from post_service.models import comments, idempotency_keys, likes, post_media, posts


async def insert_post(
    session: AsyncSession, *, values: dict[str, Any], media: Sequence[dict[str, Any]]
) -> None:
    await session.execute(posts.insert().values(**values))
    await session.execute(
        post_media.insert(),
        [
            {"post_id": values["id"], "position": i, "media_id": int(m["media_id"]), "media": m}
            for i, m in enumerate(media)
        ],
    )


async def live_posts(session: AsyncSession, post_ids: Sequence[int]) -> list[RowMapping]:
    query = select(posts).where(posts.c.id.in_(post_ids), posts.c.deleted_at.is_(None))
    return list((await session.execute(query)).mappings().all())


async def get_post(session: AsyncSession, post_id: int) -> RowMapping | None:
    query = select(posts).where(posts.c.id == post_id)
    return (await session.execute(query)).mappings().first()


async def media_of(
    session: AsyncSession, post_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    query = (
        select(post_media.c.post_id, post_media.c.media)
        .where(post_media.c.post_id.in_(post_ids))
        .order_by(post_media.c.post_id, post_media.c.position)
    )
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (await session.execute(query)).all():
        found[row.post_id].append(row.media)
    return found


async def media_ids_of(session: AsyncSession, post_id: int) -> list[int]:
    query = (
        select(post_media.c.media_id)
        .where(post_media.c.post_id == post_id)
        .order_by(post_media.c.position)
    )
    return list((await session.scalars(query)).all())


async def live_holders(session: AsyncSession, media_ids: Sequence[int]) -> dict[int, int]:
    """Media ID to the live post that holds it, for those of `media_ids` one holds."""
    query = (
        select(post_media.c.media_id, post_media.c.post_id)
        .join(posts, posts.c.id == post_media.c.post_id)
        .where(post_media.c.media_id.in_(media_ids), posts.c.deleted_at.is_(None))
    )
    return {row.media_id: row.post_id for row in (await session.execute(query)).all()}


async def find_key(
    session: AsyncSession, *, user_id: int, key: str, since: datetime
) -> RowMapping | None:
    """The caller's use of an idempotency key, if it is younger than `since`."""
    query = select(idempotency_keys).where(
        idempotency_keys.c.user_id == user_id,
        idempotency_keys.c.key == key,
        idempotency_keys.c.created_at >= since,
    )
    return (await session.execute(query)).mappings().first()


async def insert_key(
    session: AsyncSession, *, values: dict[str, Any], expired_before: datetime
) -> bool:
    """Record a key's first use; False when the key is taken (another request with it
    committed first; on PostgreSQL this waits for one still in flight). An expired use of
    the same key is forgotten first."""
    await session.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.user_id == values["user_id"],
            idempotency_keys.c.key == values["key"],
            idempotency_keys.c.created_at < expired_before,
        )
    )
    insert = insert_ignoring_conflicts(session, idempotency_keys, on=("user_id", "key"))
    inserted = await session.execute(insert.values(**values).returning(idempotency_keys.c.key))
    return inserted.first() is not None


async def purge_keys(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Forget up to `limit` keys recorded before `before`; return how many went."""
    oldest = (
        select(idempotency_keys.c.user_id, idempotency_keys.c.key)
        .where(idempotency_keys.c.created_at < before)
        .order_by(idempotency_keys.c.created_at)
        .limit(limit)
    )
    result: Any = await session.execute(
        delete(idempotency_keys).where(
            tuple_(idempotency_keys.c.user_id, idempotency_keys.c.key).in_(oldest)
        )
    )
    return int(result.rowcount or 0)


async def mark_deleted(session: AsyncSession, *, post_id: int, at: datetime) -> bool:
    result: Any = await session.execute(
        update(posts)
        .where(posts.c.id == post_id, posts.c.deleted_at.is_(None))
        .values(deleted_at=at)
    )
    return bool(result.rowcount == 1)


async def user_posts(
    session: AsyncSession, *, user_id: int, before: int | None, limit: int
) -> list[RowMapping]:
    query = (
        select(posts)
        .where(posts.c.user_id == user_id, posts.c.deleted_at.is_(None))
        .order_by(posts.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(posts.c.id < before)
    return list((await session.execute(query)).mappings().all())


# PostgreSQL: each author's newest posts from the partial index, merged; one round trip.
_NEWEST_PG = text(
    """
    SELECT p.id FROM unnest(CAST(:authors AS bigint[])) AS a(user_id)
    CROSS JOIN LATERAL (
        SELECT id FROM posts
        WHERE posts.user_id = a.user_id AND deleted_at IS NULL AND posts.id < :before
        ORDER BY id DESC LIMIT :limit
    ) AS p
    ORDER BY p.id DESC LIMIT :limit
    """
)


async def newest_of_authors(
    session: AsyncSession, author_ids: Sequence[int], *, limit: int, before: int | None = None
) -> list[int]:
    """The newest `limit` live post IDs across the authors (older than `before`), newest
    first, in one query."""
    if not author_ids:
        return []
    below = (1 << 63) - 1 if before is None else before
    if session.get_bind().dialect.name == "postgresql":
        found = await session.execute(
            _NEWEST_PG, {"authors": list(author_ids), "limit": limit, "before": below}
        )
        return [row.id for row in found]
    # SQLite has no LATERAL: the same answer by a window over the authors' posts.
    ranked = (
        select(
            posts.c.id,
            func.row_number()
            .over(partition_by=posts.c.user_id, order_by=posts.c.id.desc())
            .label("rank"),
        )
        .where(posts.c.user_id.in_(author_ids), posts.c.deleted_at.is_(None), posts.c.id < below)
        .subquery()
    )
    query = select(ranked.c.id).where(ranked.c.rank <= limit).order_by(ranked.c.id.desc())
    return list((await session.scalars(query.limit(limit))).all())


# Likes and comments. A change of a count and its row are one transaction: the row first,
# then the post's counts (the UPDATE takes the post's row lock, so changes of one post's
# counts are serial, and a post deleted meanwhile matches no row).

COUNTS = (posts.c.user_id, posts.c.likes_count, posts.c.comments_count, posts.c.counts_version)


async def add_like(session: AsyncSession, *, post_id: int, user_id: int, like_id: int) -> bool:
    """Record the like; False when the user liked the post already."""
    insert = insert_ignoring_conflicts(session, likes, on=("post_id", "user_id"))
    values = {"post_id": post_id, "user_id": user_id, "id": like_id, "created_at": utcnow()}
    inserted = await session.execute(insert.values(**values).returning(likes.c.post_id))
    return inserted.first() is not None


async def remove_like(session: AsyncSession, *, post_id: int, user_id: int) -> bool:
    result: Any = await session.execute(
        delete(likes).where(likes.c.post_id == post_id, likes.c.user_id == user_id)
    )
    return bool(result.rowcount == 1)


async def bump_counts(
    session: AsyncSession, post_id: int, *, likes_by: int = 0, comments_by: int = 0
) -> RowMapping | None:
    """Change a live post's counts and version; None when the post is missing or deleted."""
    query = (
        update(posts)
        .where(posts.c.id == post_id, posts.c.deleted_at.is_(None))
        .values(
            likes_count=posts.c.likes_count + likes_by,
            comments_count=posts.c.comments_count + comments_by,
            counts_version=posts.c.counts_version + 1,
        )
        .returning(*COUNTS)
    )
    return (await session.execute(query)).mappings().first()


async def live_counts(session: AsyncSession, post_id: int) -> RowMapping | None:
    query = select(*COUNTS).where(posts.c.id == post_id, posts.c.deleted_at.is_(None))
    return (await session.execute(query)).mappings().first()


async def counts_of(session: AsyncSession, post_ids: Sequence[int]) -> list[RowMapping]:
    query = select(posts.c.id, *COUNTS).where(
        posts.c.id.in_(post_ids), posts.c.deleted_at.is_(None)
    )
    return list((await session.execute(query)).mappings().all())


async def liked_among(session: AsyncSession, *, user_id: int, post_ids: Sequence[int]) -> set[int]:
    """Which of these posts the user likes: one query for a page."""
    if not post_ids:
        return set()
    query = select(likes.c.post_id).where(likes.c.user_id == user_id, likes.c.post_id.in_(post_ids))
    return set((await session.scalars(query)).all())


async def liked_posts(session: AsyncSession, *, user_id: int, limit: int) -> list[int]:
    """The user's liked posts, newest post first."""
    query = (
        select(likes.c.post_id)
        .where(likes.c.user_id == user_id)
        .order_by(likes.c.post_id.desc())
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def likers(
    session: AsyncSession, *, post_id: int, before: int | None, limit: int
) -> list[RowMapping]:
    """A post's likes, newest first: (id, user_id)."""
    query = (
        select(likes.c.id, likes.c.user_id)
        .where(likes.c.post_id == post_id)
        .order_by(likes.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(likes.c.id < before)
    return list((await session.execute(query)).mappings().all())


async def insert_comment(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(comments.insert().values(**values))


async def comments_of(
    session: AsyncSession, *, post_id: int, after: int | None, limit: int
) -> list[RowMapping]:
    """A post's comments, oldest first."""
    query = (
        select(comments).where(comments.c.post_id == post_id).order_by(comments.c.id).limit(limit)
    )
    if after is not None:
        query = query.where(comments.c.id > after)
    return list((await session.execute(query)).mappings().all())


async def get_comment(session: AsyncSession, comment_id: int) -> RowMapping | None:
    query = select(comments).where(comments.c.id == comment_id)
    return (await session.execute(query)).mappings().first()


async def delete_comment(session: AsyncSession, comment_id: int) -> bool:
    result: Any = await session.execute(delete(comments).where(comments.c.id == comment_id))
    return bool(result.rowcount == 1)


async def delete_engagement(session: AsyncSession, post_id: int) -> None:
    """A deleted post's likes and comments go with it."""
    await session.execute(delete(likes).where(likes.c.post_id == post_id))
    await session.execute(delete(comments).where(comments.c.post_id == post_id))


async def live_post_ids_of(session: AsyncSession, user_id: int, *, limit: int) -> list[int]:
    query = (
        select(posts.c.id)
        .where(posts.c.user_id == user_id, posts.c.deleted_at.is_(None))
        .order_by(posts.c.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def comments_by(session: AsyncSession, user_id: int, *, limit: int) -> list[RowMapping]:
    query = (
        select(comments.c.id, comments.c.post_id, comments.c.user_id)
        .where(comments.c.user_id == user_id)
        .order_by(comments.c.id)
        .limit(limit)
    )
    return list((await session.execute(query)).mappings().all())
