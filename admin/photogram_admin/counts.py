"""reconcile-counts: the stored counters checked against the rows they count, and fixed.

- users.followers_count and following_count against follows (user-service's database),
  in one transaction per batch that locks the users' rows first: a follow that moves a
  count meanwhile waits, and is counted after the fix, never lost;
- users.posts_count against the live posts of post-service's database (another database,
  so counted per batch there first): it is kept by events, so an author whose post
  event is still in post-service's outbox is left for a later run, and a fix is applied
  only if the count did not move since it was read;
- posts.likes_count and comments_count against likes and comments, the posts' rows
  locked in the same way; a fix bumps counts_version and drops the cached counts.

Each fix sets a count to what its rows say, so a run cut short is simply run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from photogram_contracts.events import POSTS_TOPIC
from photogram_contracts.keys import counts_key
from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from photogram_common.db import Database
from post_service.models import comments, likes, posts
from post_service.models import outbox as posts_outbox
from user_service.models import follows, users

BATCH = 1000


@dataclass(frozen=True)
class Mismatch:
    table: str
    row_id: int
    column: str
    stored: int
    actual: int
    fixed: bool

    def describe(self) -> str:
        outcome = "fixed" if self.fixed else "not fixed"
        where = f"{self.table} {self.row_id} {self.column}"
        return f"{where}: {self.stored} -> {self.actual} ({outcome})"


Report = Callable[[Mismatch], None]


async def _ids_after(database: Database, table: Table, after: int, *, live: bool) -> list[int]:
    query = select(table.c.id).where(table.c.id > after).order_by(table.c.id).limit(BATCH)
    if live:
        query = query.where(table.c.deleted_at.is_(None))
    async with database.single_statement() as session:
        return list((await session.scalars(query)).all())


async def _grouped(session: AsyncSession, column: Any, ids: Sequence[int], *where: Any) -> Any:
    query = select(column, func.count()).where(column.in_(ids), *where).group_by(column)
    return {int(k): int(n) for k, n in (await session.execute(query)).all()}


def _locked(session: AsyncSession, query: Any) -> Any:
    # SQLite's BEGIN IMMEDIATE holds the whole file already; PostgreSQL locks the rows.
    return query if session.get_bind().dialect.name == "sqlite" else query.with_for_update()


async def reconcile_counts(
    *,
    users_db: Database,
    posts_db: Database,
    dry_run: bool = False,
    redis: Any = None,
    report: Report | None = None,
) -> list[Mismatch]:
    """Every count that disagrees with its rows, fixed unless `dry_run`; `report` is told
    of each as it is found."""
    found: list[Mismatch] = []

    def note(mismatch: Mismatch) -> None:
        found.append(mismatch)
        if report is not None:
            report(mismatch)

    after = -1
    while ids := await _ids_after(users_db, users, after, live=False):
        after = ids[-1]
        await _user_batch(users_db, posts_db, ids, dry_run=dry_run, note=note)
    after = -1
    while ids := await _ids_after(posts_db, posts, after, live=True):
        after = ids[-1]
        fixed = await _post_batch(posts_db, ids, dry_run=dry_run, note=note)
        if fixed and redis is not None:
            await redis.delete(*(counts_key(post_id) for post_id in fixed))
    return found


async def _user_batch(
    users_db: Database,
    posts_db: Database,
    ids: list[int],
    *,
    dry_run: bool,
    note: Callable[[Mismatch], None],
) -> None:
    async with posts_db.single_statement() as session:
        live = await _grouped(session, posts.c.user_id, ids, posts.c.deleted_at.is_(None))
        unsent = select(posts_outbox.c.key).where(
            posts_outbox.c.sent_at.is_(None), posts_outbox.c.topic == POSTS_TOPIC
        )
        in_flight = {int(k) for k in (await session.scalars(unsent.distinct())).all()}
    async with users_db.transaction() as session:
        stored = (
            await session.execute(
                _locked(
                    session,
                    select(
                        users.c.id,
                        users.c.followers_count,
                        users.c.following_count,
                        users.c.posts_count,
                    ).where(users.c.id.in_(ids)),
                )
            )
        ).all()
        followers = await _grouped(session, follows.c.followee_id, ids)
        following = await _grouped(session, follows.c.follower_id, ids)
        for row in stored:
            actual = {
                "followers_count": followers.get(row.id, 0),
                "following_count": following.get(row.id, 0),
            }
            changes = {c: n for c, n in actual.items() if getattr(row, c) != n}
            for column, n in changes.items():
                note(Mismatch("users", row.id, column, getattr(row, column), n, not dry_run))
            if changes and not dry_run:
                await session.execute(update(users).where(users.c.id == row.id).values(changes))
            posts_now = live.get(row.id, 0)
            if row.posts_count == posts_now:
                continue
            fix = not dry_run and row.id not in in_flight
            if fix:
                # Only if no event moved it since it was read (the row is locked from here).
                moved: Any = await session.execute(
                    update(users)
                    .where(users.c.id == row.id, users.c.posts_count == row.posts_count)
                    .values(posts_count=posts_now)
                )
                fix = moved.rowcount == 1
            note(Mismatch("users", row.id, "posts_count", row.posts_count, posts_now, fix))


async def _post_batch(
    posts_db: Database, ids: list[int], *, dry_run: bool, note: Callable[[Mismatch], None]
) -> list[int]:
    fixed: list[int] = []
    async with posts_db.transaction() as session:
        stored = (
            await session.execute(
                _locked(
                    session,
                    select(posts.c.id, posts.c.likes_count, posts.c.comments_count).where(
                        posts.c.id.in_(ids), posts.c.deleted_at.is_(None)
                    ),
                )
            )
        ).all()
        liked = await _grouped(session, likes.c.post_id, ids)
        commented = await _grouped(session, comments.c.post_id, ids)
        for row in stored:
            actual = {
                "likes_count": liked.get(row.id, 0),
                "comments_count": commented.get(row.id, 0),
            }
            changes = {c: n for c, n in actual.items() if getattr(row, c) != n}
            for column, n in changes.items():
                note(Mismatch("posts", row.id, column, getattr(row, column), n, not dry_run))
            if changes and not dry_run:
                await session.execute(
                    update(posts)
                    .where(posts.c.id == row.id)
                    .values(**changes, counts_version=posts.c.counts_version + 1)
                )
                fixed.append(row.id)
    return fixed
