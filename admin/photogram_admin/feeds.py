"""rebuild-feeds: home timelines rebuilt now by feed-service's own rebuild, a bounded number
at a time. Each rebuild replaces one timeline whole, so a run cut short leaves every
timeline either as it was or rebuilt, and running it again is harmless."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from feed_service.service import FeedService
from photogram_admin.progress import Progress
from photogram_common.db import Database
from user_service.models import users

ID_BATCH = 1000


@dataclass
class RebuildReport:
    """What a run did: rebuilt, left to a reader's rebuild under way, or failed."""

    rebuilt: int = 0
    busy: int = 0
    built_before: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def users(self) -> int:
        return self.rebuilt + self.busy + len(self.failed)


async def count_users(database: Database) -> int:
    async with database.single_statement() as session:
        return int(await session.scalar(select(func.count()).select_from(users)) or 0)


async def user_ids(database: Database, *, batch: int = ID_BATCH) -> AsyncIterator[list[int]]:
    """Every user's ID in ascending order, a batch per short query."""
    after = -1
    while True:
        async with database.single_statement() as session:
            query = select(users.c.id).where(users.c.id > after).order_by(users.c.id).limit(batch)
            found = list((await session.scalars(query)).all())
        if not found:
            return
        yield found
        after = found[-1]


async def _listed(ids: Iterable[int]) -> AsyncIterator[list[int]]:
    yield list(ids)


async def rebuild_feeds(
    feed: FeedService,
    ids: AsyncIterator[list[int]] | Iterable[int],
    *,
    total: int,
    concurrency: int = 8,
    dry_run: bool = False,
) -> RebuildReport:
    """Rebuild each user's timeline (`dry_run`: only count those built now), `concurrency`
    at a time, with a progress bar on stderr."""
    report = RebuildReport()
    batches = _listed(ids) if not isinstance(ids, AsyncIterator) else ids
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=concurrency * 4)
    progress = Progress("checking" if dry_run else "rebuilding", total)

    async def one(user_id: int) -> None:
        if dry_run:
            report.built_before += await feed.timelines.is_built(user_id)
            report.rebuilt += 1
        elif await feed.rebuild(user_id):
            report.rebuilt += 1
        else:
            report.busy += 1

    async def worker() -> None:
        while (user_id := await queue.get()) is not None:
            try:
                await one(user_id)
            except Exception as exc:
                report.failed.append((user_id, repr(exc)))
            progress.advance()

    try:
        async with asyncio.TaskGroup() as tasks:
            workers = [tasks.create_task(worker()) for _ in range(max(1, concurrency))]
            async for batch in batches:
                for user_id in batch:
                    await queue.put(user_id)
            for _ in workers:
                await queue.put(None)
    finally:
        progress.close()
        report.seconds = progress.elapsed
    return report
