"""media-service use cases: process an upload into stored variants, look media up, let a post
claim them, and delete them: unclaimed ones (a failed upload's clean-up, the sweeper) and a
deleted post's."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from photogram_contracts.events import PostDeleted
from photogram_contracts.peers import PostCatalog
from photogram_contracts.schemas import MediaRead, VariantRead
from sqlalchemy import ColumnElement, and_, delete, or_, select, update

from media_service.imaging import ImageRejected, ProcessedImage
from media_service.imaging.worker import process_in_worker
from media_service.models import ATTACHED, CLAIMED, DELETING, PENDING, media
from media_service.uploads import ParsedUpload, discard
from photogram_common.blobs import BlobStore
from photogram_common.bus.consumer import TransientError
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.problems import Problem
from photogram_common.timeutil import utcnow

log = logging.getLogger(__name__)
VARIANT_NAMES = ("thumbnail", "small", "medium", "large")
# Keys are content-derived, so a variant's bytes never change under its URL.
IMMUTABLE = "public, max-age=31536000, immutable"
# Rows per statement when the sweeper deletes or checks media; post-service's batch takes 500.
SWEEP_BATCH = 200


def variant_key(media_id: int, name: str, data: bytes) -> str:
    """Content-derived: the bytes' hash is in the key, so a key never changes meaning."""
    return f"media/{media_id}/{name}-{hashlib.sha256(data).hexdigest()[:32]}.jpg"


async def delete_blobs(blobs: BlobStore, keys: Sequence[str]) -> int:
    """Delete the objects; return how many could not be (each is logged)."""
    failed = 0
    for key in keys:
        try:
            await blobs.delete(key)
        except Exception:
            failed += 1
            log.exception("could not delete blob", extra={"key": key})
    return failed


@dataclass
class MediaService:
    database: Database
    blobs: BlobStore
    ids: IdGenerator
    executor: Executor | None
    max_image_pixels: int
    public_base_url: str | None = None
    presigned_url_seconds: int = 3600
    # Unclaimed media older than this are orphans (a gateway died mid-upload); so are claimed
    # ones whose post does not exist this long after the claim.
    orphan_grace: timedelta = timedelta(hours=1)
    # post-service, asked by the sweeper whether claimed media's posts exist.
    posts: PostCatalog | None = None
    swept: dict[str, int] = field(default_factory=dict)

    def media_read(self, row: Any) -> MediaRead:
        variants = {
            name: VariantRead(
                url=self.variant_url(row["id"], name, spec),
                width=spec["width"],
                height=spec["height"],
            )
            for name, spec in row["variants"].items()
        }
        return MediaRead(
            media_id=str(row["id"]),
            user_id=str(row["user_id"]),
            content_type=row["content_type"],
            width=row["width"],
            height=row["height"],
            blurhash=row["blurhash"],
            variants=variants,
        )

    def variant_url(self, media_id: int, name: str, spec: dict[str, Any]) -> str:
        if self.public_base_url:
            return f"{self.public_base_url.rstrip('/')}/{spec['key']}"
        return f"/api/media/{media_id}/{name}.jpg"

    async def _process(self, path: str) -> ProcessedImage | ImageRejected:
        loop = asyncio.get_running_loop()
        # CPU work runs in a process pool so one large photo does not stall other requests.
        return await loop.run_in_executor(
            self.executor, process_in_worker, path, self.max_image_pixels
        )

    async def ingest(self, *, user_id: int, upload: ParsedUpload) -> list[MediaRead]:
        """Process every file, store the variants, then record all media in one transaction."""
        stored: list[str] = []
        rows: list[dict[str, Any]] = []
        try:
            for index, item in enumerate(upload.files):
                assert item.path is not None  # parsed with spooling
                result = await self._process(str(item.path))
                if isinstance(result, ImageRejected):
                    raise rejected(result, index)
                media_id = self.ids.next_id()
                variants: dict[str, Any] = {}
                for variant in result.variants:
                    key = variant_key(media_id, variant.name, variant.data)
                    await self.blobs.put(
                        key, variant.data, content_type="image/jpeg", cache_control=IMMUTABLE
                    )
                    stored.append(key)
                    variants[variant.name] = {
                        "key": key,
                        "width": variant.width,
                        "height": variant.height,
                    }
                now = utcnow()
                rows.append(
                    {
                        "id": media_id,
                        "user_id": user_id,
                        "content_type": result.content_type,
                        "width": result.width,
                        "height": result.height,
                        "blurhash": result.blurhash,
                        "status": PENDING,
                        "variants": variants,
                        "created_at": now,
                        "status_at": now,
                    }
                )
            async with self.database.transaction() as session:
                await session.execute(media.insert(), rows)
        except BaseException:
            # A refused or failed upload leaves no object behind (and no row: none was written).
            await asyncio.shield(self._delete_blobs(stored))
            raise
        finally:
            discard(upload.directory)
        return [self.media_read(row) for row in rows]

    async def _delete_blobs(self, keys: Sequence[str]) -> int:
        return await delete_blobs(self.blobs, keys)

    async def lookup(self, media_ids: Sequence[int]) -> list[MediaRead]:
        if not media_ids:
            return []
        async with self.database.transaction() as session:
            query = select(media).where(media.c.id.in_(media_ids), media.c.status != DELETING)
            rows = (await session.execute(query)).mappings().all()
        return [self.media_read(row) for row in rows]

    async def get(self, media_id: int) -> MediaRead:
        found = await self.lookup([media_id])
        if not found:
            raise Problem(404, "No such media.", title="Not found")
        return found[0]

    async def variant_location(self, media_id: int, name: str) -> tuple[str, str | None]:
        """The variant's key and, when the store can give one, a presigned URL to it."""
        async with self.database.transaction() as session:
            query = select(media.c.variants).where(
                media.c.id == media_id, media.c.status != DELETING
            )
            row = (await session.execute(query)).first()
        if row is None or name not in row.variants:
            raise Problem(404, "No such media variant.", title="Not found")
        key: str = row.variants[name]["key"]
        return key, await self.blobs.presigned_get_url(key, expires_in=self.presigned_url_seconds)

    async def claim(
        self, *, user_id: int, post_id: int, media_ids: Sequence[int]
    ) -> list[MediaRead]:
        """Give the caller's unclaimed media to a post about to be made, all or none, in the
        given order. From here on only that post's deletion (or the sweeper, once it finds
        no such post) deletes them; a claim by the same post again is a no-op."""
        now = utcnow()
        async with self.database.transaction() as session:
            await session.execute(
                update(media)
                .where(
                    media.c.id.in_(media_ids),
                    media.c.user_id == user_id,
                    media.c.status == PENDING,
                )
                .values(status=CLAIMED, post_id=post_id, status_at=now)
            )
            query = select(media).where(media.c.id.in_(media_ids))
            by_id = {row["id"]: row for row in (await session.execute(query)).mappings().all()}
            for media_id in media_ids:
                row = by_id.get(media_id)
                if (
                    row is None
                    or row["user_id"] != user_id
                    or row["post_id"] != post_id
                    or row["status"] not in (CLAIMED, ATTACHED)
                ):
                    # Raised inside the transaction: the media claimed above are let go.
                    raise _unclaimable(media_id)
        return [self.media_read(by_id[m]) for m in media_ids]

    async def release(self, *, user_id: int, post_id: int) -> int:
        """Let go of a post's claim when the post was certainly not made (its transaction
        rolled back): the media are unclaimed again, for the upload's clean-up to delete."""
        async with self.database.transaction() as session:
            result: Any = await session.execute(
                update(media)
                .where(
                    media.c.post_id == post_id,
                    media.c.user_id == user_id,
                    media.c.status == CLAIMED,
                )
                .values(status=PENDING, post_id=None, status_at=utcnow())
            )
        return int(result.rowcount or 0)

    async def remove(self, *, user_id: int, media_ids: Sequence[int]) -> int:
        """Delete the caller's unclaimed media and their objects (an upload's clean-up after
        its post was not made). Media a post claimed are never touched: the post may exist
        even though its maker's caller stopped waiting."""
        return await self._purge(
            and_(
                media.c.id.in_(media_ids),
                media.c.user_id == user_id,
                media.c.status == PENDING,
            )
        )

    async def on_post_deleted(self, event: PostDeleted) -> None:
        """A deleted post's media go with it: rows and objects (idempotent: a redelivery, or
        a retry after an object could not be deleted, finds what is left)."""
        claimed = media.c.post_id == event.post_id
        # The event names the post's media too: rows from before claims have no post_id.
        where = or_(claimed, media.c.id.in_(event.media_ids)) if event.media_ids else claimed
        await self._purge(and_(media.c.user_id == event.author_id, where), strict=True)

    async def _purge(self, where: ColumnElement[bool], *, strict: bool = False) -> int:
        """Delete the media rows `where` selects, and their objects.

        The rows are first marked deleting (hidden from readers) in one conditional UPDATE,
        so a claim racing this sees them gone, and two purges never both take a row; then
        the objects are deleted, then the rows. If an object cannot be deleted its row stays
        deleting: `strict` raises a transient error (the consumer retries it with backoff),
        otherwise the sweeper finishes it.
        """
        async with self.database.transaction() as session:
            marked = (
                await session.execute(
                    update(media)
                    .where(where)
                    .values(status=DELETING, status_at=utcnow())
                    .returning(media.c.id, media.c.variants)
                )
            ).all()
        if not marked:
            return 0
        keys = [v["key"] for row in marked for v in row.variants.values()]
        failed = await self._delete_blobs(keys)
        if failed:
            if strict:
                raise TransientError(f"{failed} of {len(keys)} objects could not be deleted")
            return 0
        async with self.database.transaction() as session:
            ids = [row.id for row in marked]
            await session.execute(
                delete(media).where(media.c.id.in_(ids), media.c.status == DELETING)
            )
        return len(marked)

    async def sweep(self, *, grace: timedelta | None = None) -> dict[str, int]:
        """One round of the sweeper: delete media no post uses once `grace` has passed.

        - pending media older than the grace (an upload whose post was never asked for);
        - claimed media whose claim is older than the grace and whose post does not exist
          (its transaction failed after the claim): post-service is asked; the live posts'
          media become attached and are never looked at again;
        - deleting rows older than the grace (objects that could not be deleted then).
        """
        cutoff = utcnow() - (self.orphan_grace if grace is None else grace)
        counts = {"pending": 0, "claimed": 0, "attached": 0, "deleting": 0}
        for status in (PENDING, DELETING):
            while True:
                ids = await self._ids_before(status, cutoff)
                if not ids:
                    break
                where = and_(media.c.id.in_(ids), media.c.status == status)
                counts[status] += await self._purge(where)
                if len(ids) < SWEEP_BATCH:
                    break
        if self.posts is not None:
            while True:
                claims = await self._claims_before(cutoff)
                if not claims:
                    break
                attached, purged = await self._settle(claims)
                counts["attached"] += attached
                counts["claimed"] += purged
                if len(claims) < SWEEP_BATCH:
                    break
        self.swept = {k: self.swept.get(k, 0) + v for k, v in counts.items()}
        if any(counts.values()):
            log.info("media swept", extra=counts)
        return counts

    async def _ids_before(self, status: str, cutoff: Any) -> list[int]:
        async with self.database.transaction() as session:
            query = (
                select(media.c.id)
                .where(media.c.status == status, media.c.status_at < cutoff)
                .order_by(media.c.status_at)
                .limit(SWEEP_BATCH)
            )
            return list((await session.scalars(query)).all())

    async def _claims_before(self, cutoff: Any) -> dict[int, int]:
        async with self.database.transaction() as session:
            query = (
                select(media.c.id, media.c.post_id)
                .where(media.c.status == CLAIMED, media.c.status_at < cutoff)
                .order_by(media.c.status_at)
                .limit(SWEEP_BATCH)
            )
            return {row.id: row.post_id for row in (await session.execute(query)).all()}

    async def _settle(self, claims: dict[int, int]) -> tuple[int, int]:
        """Attach the claimed media whose post is live; delete those whose post is not."""
        assert self.posts is not None
        post_ids = sorted({p for p in claims.values() if p is not None})
        live = {int(post.post_id) for post in await self.posts.posts(post_ids)}
        ids = list(claims)
        async with self.database.transaction() as session:
            result: Any = await session.execute(
                update(media)
                .where(media.c.id.in_(ids), media.c.status == CLAIMED, media.c.post_id.in_(live))
                .values(status=ATTACHED, status_at=utcnow())
            )
        dead = [m for m, p in claims.items() if p not in live]
        purged = 0
        if dead:
            where = and_(
                media.c.id.in_(dead), media.c.status == CLAIMED, media.c.post_id.not_in(live)
            )
            purged = await self._purge(where)
        return int(result.rowcount or 0), purged


def _unclaimable(media_id: int) -> Problem:
    detail = f"Media {media_id} does not exist, is not yours or is in another post."
    errors = [{"loc": ["body", "media_ids"], "msg": detail, "type": "value_error"}]
    return Problem(422, detail, title="Validation failed", extra={"errors": errors})


def rejected(rejection: ImageRejected, index: int) -> Problem:
    """The problem for the upload's index-th file; a 422 names the file, as validation does."""
    errors = [{"loc": ["body", "file", str(index)], "msg": rejection.detail, "type": "value_error"}]
    return Problem(
        rejection.status,
        rejection.detail,
        title=rejection.title,
        extra={"errors": errors} if rejection.status == 422 else None,
    )
