"""sweep-media: media-service's own sweeper, run once with the grace asked for.

The sweeper deletes media no live post holds once the grace has passed (their objects
first, then their rows) and finishes deletions an object store refused before. A dry run
counts what it would delete, asking post-service's database which media live posts hold.
Avatars live in a table of their own, replaced whole, and are never swept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from photogram_contracts.peers import PostCatalog
from sqlalchemy import select

from media_service.models import DELETING, PENDING, media
from media_service.service import SWEEP_BATCH, MediaService
from photogram_common.timeutil import utcnow


@dataclass(frozen=True)
class SweepPreview:
    orphans: int
    held: int
    deleting: int


async def sweep_media(service: MediaService, *, grace: timedelta) -> dict[str, int]:
    """One round of media-service's sweeper: {"pending": deleted orphans, "attached": media
    found held by a live post, "deleting": unfinished deletions finished}."""
    return await service.sweep(grace=grace)


async def preview_sweep(
    service: MediaService, posts: PostCatalog, *, grace: timedelta
) -> SweepPreview:
    """What `sweep_media` would do now, changing nothing."""
    cutoff = utcnow() - grace
    orphans = held = deleting = 0
    after = -1
    while True:
        query = (
            select(media.c.id, media.c.status)
            .where(media.c.id > after, media.c.status.in_((PENDING, DELETING)))
            .where(media.c.status_at < cutoff)
            .order_by(media.c.id)
            .limit(SWEEP_BATCH)
        )
        async with service.database.single_statement() as session:
            rows = (await session.execute(query)).all()
        if not rows:
            return SweepPreview(orphans=orphans, held=held, deleting=deleting)
        after = rows[-1].id
        pending = [row.id for row in rows if row.status == PENDING]
        holders = await posts.holders(pending)
        held += len(holders)
        orphans += len(pending) - len(holders)
        deleting += len(rows) - len(pending)
