"""SQL for users and the follow graph. Functions take a session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from photogram_common.db import insert_ignoring_conflicts
from user_service.models import follows, processed_events, refresh_tokens, sessions, users


async def insert_user(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(users.insert().values(**values))


async def get_user(session: AsyncSession, user_id: int) -> RowMapping | None:
    return (await session.execute(select(users).where(users.c.id == user_id))).mappings().first()


async def get_users(session: AsyncSession, user_ids: Sequence[int]) -> list[RowMapping]:
    query = select(users).where(users.c.id.in_(user_ids))
    return list((await session.execute(query)).mappings().all())


async def get_user_by_username(session: AsyncSession, username: str) -> RowMapping | None:
    query = select(users).where(users.c.username == username.lower())
    return (await session.execute(query)).mappings().first()


async def get_user_by_login(session: AsyncSession, login: str) -> RowMapping | None:
    login = login.strip().lower()
    query = select(users).where(or_(users.c.username == login, users.c.email_normalized == login))
    return (await session.execute(query)).mappings().first()


async def username_or_email_taken(session: AsyncSession, username: str, email: str) -> bool:
    query = select(func.count()).where(
        or_(users.c.username == username, users.c.email_normalized == email)
    )
    return bool(await session.scalar(query))


async def insert_follow(
    session: AsyncSession, *, follower_id: int, followee_id: int, follow_id: int, at: datetime
) -> bool:
    """Insert the edge; False when it existed already."""
    statement = insert_ignoring_conflicts(
        session, follows, on=("follower_id", "followee_id")
    ).values(follower_id=follower_id, followee_id=followee_id, id=follow_id, created_at=at)
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)


async def delete_follow(session: AsyncSession, *, follower_id: int, followee_id: int) -> bool:
    result: Any = await session.execute(
        delete(follows).where(
            follows.c.follower_id == follower_id, follows.c.followee_id == followee_id
        )
    )
    return bool(result.rowcount == 1)


async def add_to_counts(
    session: AsyncSession, *, follower_id: int, followee_id: int, delta: int
) -> tuple[int, bool] | None:
    """Move both counts in the database (no read-modify-write); return the followee's new
    count and their pulled flag as it was, or None when either account is gone (deleted
    since the caller looked). The update holds the followee's row until the transaction
    ends, so a change of the flag that follows it is decided on this count."""
    moved: Any = await session.execute(
        update(users)
        .where(users.c.id == follower_id)
        .values(following_count=users.c.following_count + delta)
    )
    if moved.rowcount != 1:
        return None
    row = (
        await session.execute(
            update(users)
            .where(users.c.id == followee_id)
            .values(followers_count=users.c.followers_count + delta)
            .returning(users.c.followers_count, users.c.pulled)
        )
    ).first()
    if row is None:
        return None
    return int(row.followers_count), bool(row.pulled)


async def set_pulled(session: AsyncSession, *, user_id: int, pulled: bool) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(pulled=pulled))


async def get_pulled(session: AsyncSession, user_id: int) -> bool | None:
    """The user's pulled flag; None when there is no such user."""
    found = await session.scalar(select(users.c.pulled).where(users.c.id == user_id))
    return None if found is None else bool(found)


async def add_to_posts_count(session: AsyncSession, *, user_id: int, delta: int) -> None:
    await session.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(
            posts_count=func.max(users.c.posts_count + delta, 0)
            if session.get_bind().dialect.name == "sqlite"
            else func.greatest(users.c.posts_count + delta, 0)
        )
    )


async def follow_page(
    session: AsyncSession, *, user_id: int, direction: str, before: int | None, limit: int
) -> list[tuple[int, RowMapping]]:
    """(follow id, user) pairs, newest follow first; direction is 'followers' or 'following'."""
    if direction == "followers":
        anchor, other = follows.c.followee_id, follows.c.follower_id
    else:
        anchor, other = follows.c.follower_id, follows.c.followee_id
    query = (
        select(follows.c.id.label("follow_id"), users)
        .join(users, users.c.id == other)
        .where(anchor == user_id)
        .order_by(follows.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(follows.c.id < before)
    rows = (await session.execute(query)).mappings().all()
    return [(row["follow_id"], row) for row in rows]


# Built once: a fan-out reads a page per 1,000 followers, and building and hashing this
# statement per page cost as much as running it (docs/benchmarks.md (a)).
_ACTIVE_FOLLOWERS = (
    select(follows.c.follower_id)
    .join(users, users.c.id == follows.c.follower_id)
    .where(
        and_(
            follows.c.followee_id == bindparam("user_id"),
            follows.c.follower_id > bindparam("after"),
            users.c.last_active_at >= bindparam("active_since"),
        )
    )
    .order_by(follows.c.follower_id)
    .limit(bindparam("limit"))
)
# On PostgreSQL one row holding the page as an array: a row per ID cost ~5 µs each in the
# result processing.
_page = _ACTIVE_FOLLOWERS.subquery()
_ACTIVE_FOLLOWERS_ARRAY = select(
    func.array_agg(aggregate_order_by(_page.c.follower_id, _page.c.follower_id))
)


async def active_follower_ids(
    session: AsyncSession, *, user_id: int, active_since: datetime, after: int, limit: int
) -> list[int]:
    """Followers seen since `active_since`, by ascending ID, after a keyset position."""
    params = {"user_id": user_id, "after": after, "active_since": active_since, "limit": limit}
    if session.get_bind().dialect.name == "postgresql":
        return list(await session.scalar(_ACTIVE_FOLLOWERS_ARRAY, params) or ())
    return list((await session.scalars(_ACTIVE_FOLLOWERS, params)).all())


async def followees(session: AsyncSession, *, user_id: int) -> list[tuple[int, int, bool]]:
    """(followee id, its followers count, pulled) for every account the user follows."""
    query = (
        select(users.c.id, users.c.followers_count, users.c.pulled)
        .join(follows, follows.c.followee_id == users.c.id)
        .where(follows.c.follower_id == user_id)
    )
    rows = (await session.execute(query)).all()
    return [(row.id, row.followers_count, bool(row.pulled)) for row in rows]


async def touch_last_active(
    session: AsyncSession, *, user_id: int, at: datetime, older_than: datetime
) -> None:
    await session.execute(
        update(users)
        .where(users.c.id == user_id, users.c.last_active_at < older_than)
        .values(last_active_at=at)
    )


async def mark_processed(session: AsyncSession, *, event_id: str, at: datetime) -> bool:
    """Record an event as handled; False when it was handled before (a redelivery)."""
    statement = insert_ignoring_conflicts(session, processed_events, on=("event_id",)).values(
        event_id=event_id, processed_at=at
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)


async def purge_processed(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Forget up to `limit` event IDs handled before `before`; return how many went."""
    oldest = (
        select(processed_events.c.event_id)
        .where(processed_events.c.processed_at < before)
        .order_by(processed_events.c.processed_at)
        .limit(limit)
    )
    result: Any = await session.execute(
        delete(processed_events).where(processed_events.c.event_id.in_(oldest.scalar_subquery()))
    )
    return int(result.rowcount or 0)


async def insert_session(
    session: AsyncSession, *, session_id: int, user_id: int, at: datetime
) -> None:
    await session.execute(
        sessions.insert().values(id=session_id, user_id=user_id, created_at=at, revoked_at=None)
    )


async def insert_refresh_token(
    session: AsyncSession, *, token_hash: str, session_id: int, at: datetime, expires: datetime
) -> None:
    await session.execute(
        refresh_tokens.insert().values(
            token_hash=token_hash, session_id=session_id, issued_at=at, expires_at=expires
        )
    )


async def find_refresh_token(
    session: AsyncSession, token_hash: str, *, live_at: datetime | None = None
) -> RowMapping | None:
    """The token with its session's user and state (None: never issued, or with
    `live_at`, expired by then)."""
    query = (
        select(
            refresh_tokens.c.session_id,
            refresh_tokens.c.used_at,
            sessions.c.user_id,
            sessions.c.revoked_at,
        )
        .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
        .where(refresh_tokens.c.token_hash == token_hash)
    )
    if live_at is not None:
        query = query.where(refresh_tokens.c.expires_at > live_at)
    return (await session.execute(query)).mappings().first()


async def use_refresh_token(session: AsyncSession, token_hash: str, *, at: datetime) -> bool:
    """Mark the token used; False when it already was (a copy is in other hands)."""
    result: Any = await session.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
        .values(used_at=at)
    )
    return bool(result.rowcount == 1)


async def revoke_session(session: AsyncSession, session_id: int, *, at: datetime) -> None:
    await session.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def update_profile(session: AsyncSession, user_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(**values))


async def relationship(session: AsyncSession, viewer_id: int, user_id: int) -> tuple[bool, bool]:
    """(the viewer follows the user, the user follows the viewer), in one query."""
    query = select(follows.c.follower_id).where(
        or_(
            and_(follows.c.follower_id == viewer_id, follows.c.followee_id == user_id),
            and_(follows.c.follower_id == user_id, follows.c.followee_id == viewer_id),
        )
    )
    found = set((await session.execute(query)).scalars())
    return viewer_id in found, user_id in found


# A prefix of a few letters can match a large share of everyone (a letter, or the start of a
# common name: some percent of a million users), and the prefix indexes would then find and
# sort every match; walking the most followed first finds the page among the first few
# hundred. When a walk of WALKED_USERS finds less than the page, the prefix is rare (fewer
# than a page in that many users) and the indexes are the cheap way.
WALKED_PREFIX_CHARS = 3
WALKED_USERS = 4000


def _prefix(text: str) -> str:
    """A LIKE pattern for values starting with `text` (its wildcards taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _matching(columns: Any, prefix: str) -> Any:
    """A username, first or last name (of `users` or of a subquery of it) starting so."""
    pattern = _prefix(prefix)
    return or_(
        columns.username.like(pattern, escape="\\"),
        func.lower(columns.first_name).like(pattern, escape="\\"),
        func.lower(columns.last_name).like(pattern, escape="\\"),
    )


def _after(query: Any, after: tuple[int, int] | None) -> Any:
    """The rows after (followers_count, id) in the search's order: the first term bounds a
    range of ix_users_followers_count, the second filters the rows of its first count."""
    if after is None:
        return query
    count, user_id = after
    return query.where(
        users.c.followers_count <= count,
        or_(users.c.followers_count < count, users.c.id > user_id),
    )


async def search(
    session: AsyncSession, prefix: str, *, after: tuple[int, int] | None, limit: int
) -> list[RowMapping]:
    """Users whose username, first or last name starts with `prefix` (lower-cased), most
    followed first (then by ID), after the (followers_count, id) of `after`."""
    if len(prefix) <= WALKED_PREFIX_CHARS:
        rows = await search_most_followed(session, prefix, after=after, limit=limit)
        if len(rows) == limit:
            return rows
    return await search_by_prefix(session, prefix, after=after, limit=limit)


async def search_most_followed(
    session: AsyncSession, prefix: str, *, after: tuple[int, int] | None, limit: int
) -> list[RowMapping]:
    """The matches among the next WALKED_USERS users in the search's order (the index of
    the migration "users by followers"), the walk stopping at the page's last match: the
    first `limit` matches if it finds that many."""
    order = (users.c.followers_count.desc(), users.c.id)
    top = _after(select(users), after).order_by(*order).limit(WALKED_USERS).subquery()
    query = select(top).where(_matching(top.c, prefix))
    query = query.order_by(top.c.followers_count.desc(), top.c.id).limit(limit)
    return list((await session.execute(query)).mappings())


async def search_by_prefix(
    session: AsyncSession, prefix: str, *, after: tuple[int, int] | None, limit: int
) -> list[RowMapping]:
    """The matches the prefix indexes find (migration "users search": a range of each, in a
    bitmap OR), sorted. The order is given as an expression no index has: PostgreSQL's
    estimate of how common a prefix is can be several times too high (measured: 6,200 rows
    for 842), and it would then walk ix_users_followers_count through tens of thousands."""
    query = _after(select(users).where(_matching(users.c, prefix)), after)
    query = query.order_by((users.c.followers_count + 0).desc(), users.c.id).limit(limit)
    return list((await session.execute(query)).mappings())


async def edges_of(session: AsyncSession, user_id: int) -> tuple[list[int], list[int]]:
    """(whom the user follows, who follows the user), locked for the account's deletion."""
    followees = select(follows.c.followee_id).where(follows.c.follower_id == user_id)
    followers = select(follows.c.follower_id).where(follows.c.followee_id == user_id)
    return (
        list((await session.scalars(followees.with_for_update())).all()),
        list((await session.scalars(followers.with_for_update())).all()),
    )


async def delete_account(session: AsyncSession, user_id: int) -> list[int]:
    """Delete the user's row, sessions and refresh tokens; return the session IDs."""
    ids = list(
        (await session.scalars(select(sessions.c.id).where(sessions.c.user_id == user_id))).all()
    )
    if ids:
        await session.execute(delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(ids)))
        await session.execute(delete(sessions).where(sessions.c.id.in_(ids)))
    await session.execute(delete(users).where(users.c.id == user_id))
    return ids
