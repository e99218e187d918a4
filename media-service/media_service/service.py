"""media-service use cases: process an upload into stored variants and sign a claim on them,
look media up, and delete them: those no post holds (the sweeper: the one clean-up of an
upload whose post was not made) and a deleted post's."""

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
from sqlalchemy import ColumnElement

from media_service import repository
from media_service.imaging import ImageRejected, ProcessedImage
from media_service.imaging.worker import process_in_worker
from media_service.models import DELETING, PENDING
from media_service.uploads import ParsedUpload, discard
from photogram_common.blobs import BlobStore
from photogram_common.bus.consumer import TransientError
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.media_claims import sign_claim
from photogram_common.metrics import UPLOAD_STAGE_DURATION, timed
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
    # The internal secret the claims are signed with, and how long a claim can make a post.
    claim_secret: str = ""
    claim_ttl: timedelta = timedelta(minutes=10)
    # Pending media older than this are orphans unless a live post holds them: their claim
    # ran out long ago, so no post can be made of them any more.
    orphan_grace: timedelta = timedelta(hours=1)
    # post-service, asked by the sweeper which live posts hold old pending media.
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
                with timed(UPLOAD_STAGE_DURATION, stage="process"):
                    result = await self._process(str(item.path))
                if isinstance(result, ImageRejected):
                    raise rejected(result, index)
                media_id = self.ids.next_id()
                variants: dict[str, Any] = {}
                for variant in result.variants:
                    key = variant_key(media_id, variant.name, variant.data)
                    with timed(UPLOAD_STAGE_DURATION, stage="store"):
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
            with timed(UPLOAD_STAGE_DURATION, stage="record"):
                async with self.database.transaction() as session:
                    await repository.insert_media(session, rows)
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
            rows = await repository.visible_media(session, media_ids)
        return [self.media_read(row) for row in rows]

    async def get(self, media_id: int) -> MediaRead:
        found = await self.lookup([media_id])
        if not found:
            raise Problem(404, "No such media.", title="Not found")
        return found[0]

    async def variant_location(self, media_id: int, name: str) -> tuple[str, str | None]:
        """The variant's key and, when the store can give one, a presigned URL to it."""
        async with self.database.transaction() as session:
            variants = await repository.visible_variants(session, media_id)
        if variants is None or name not in variants:
            raise Problem(404, "No such media variant.", title="Not found")
        key: str = variants[name]["key"]
        return key, await self.blobs.presigned_get_url(key, expires_in=self.presigned_url_seconds)

    def claim_on(self, user_id: int, found: Sequence[MediaRead]) -> str:
        """The signed, short-lived claim on media just stored for `user_id`: what makes
        their post at post-service, which checks it without asking here."""
        return sign_claim(
            secret=self.claim_secret,
            owner_id=user_id,
            media=found,
            ttl_seconds=self.claim_ttl.total_seconds(),
        )

    async def on_post_deleted(self, event: PostDeleted) -> None:
        """A deleted post's media go with it: rows and objects (idempotent: a redelivery, or
        a retry after an object could not be deleted, finds what is left)."""
        where = repository.of_post(
            author_id=event.author_id, post_id=event.post_id, media_ids=event.media_ids
        )
        await self._purge(where, strict=True)

    async def _purge(self, where: ColumnElement[bool], *, strict: bool = False) -> int:
        """Delete the media rows `where` selects, and their objects.

        The rows are first marked deleting (hidden from readers) in one conditional UPDATE,
        so two purges never both take a row; then
        the objects are deleted, then the rows. If an object cannot be deleted its row stays
        deleting: `strict` raises a transient error (the consumer retries it with backoff),
        otherwise the sweeper finishes it.
        """
        async with self.database.transaction() as session:
            marked = await repository.mark_deleting(session, where, at=utcnow())
        if not marked:
            return 0
        keys = [v["key"] for row in marked for v in row.variants.values()]
        failed = await self._delete_blobs(keys)
        if failed:
            if strict:
                raise TransientError(f"{failed} of {len(keys)} objects could not be deleted")
            return 0
        async with self.database.transaction() as session:
            await repository.delete_deleting(session, [row.id for row in marked])
        return len(marked)

    async def sweep(self, *, grace: timedelta | None = None) -> dict[str, int]:
        """One round of the sweeper: delete media no post uses once `grace` has passed.

        - pending media older than the grace: post-service is asked which live posts hold
          them; those become attached (and are never looked at again), the others are
          orphans (their post was refused, failed, lost its race for an idempotency key or
          was never asked for) and are deleted, objects included. Past the grace their
          claim has run out, so no post can still be made of them: the answer is final;
        - deleting rows older than the grace (objects that could not be deleted then).
        """
        cutoff = utcnow() - (self.orphan_grace if grace is None else grace)
        counts = {"pending": 0, "attached": 0, "deleting": 0}
        while self.posts is not None:
            ids = await self._ids_before(PENDING, cutoff)
            if not ids:
                break
            attached, purged = await self._settle(ids)
            counts["attached"] += attached
            counts["pending"] += purged
            if len(ids) < SWEEP_BATCH:
                break
        while True:
            ids = await self._ids_before(DELETING, cutoff)
            if not ids:
                break
            counts["deleting"] += await self._purge(repository.with_status(ids, DELETING))
            if len(ids) < SWEEP_BATCH:
                break
        self.swept = {k: self.swept.get(k, 0) + v for k, v in counts.items()}
        if any(counts.values()):
            log.info("media swept", extra=counts)
        return counts

    async def _ids_before(self, status: str, cutoff: Any) -> list[int]:
        async with self.database.transaction() as session:
            return await repository.ids_before(session, status, cutoff, limit=SWEEP_BATCH)

    async def _settle(self, ids: list[int]) -> tuple[int, int]:
        """Attach the pending media a live post holds (to it); delete the others."""
        assert self.posts is not None
        holders = await self.posts.holders(ids)
        attached = 0
        by_post: dict[int, list[int]] = {}
        for media_id, post_id in holders.items():
            by_post.setdefault(post_id, []).append(media_id)
        if by_post:
            now = utcnow()
            async with self.database.transaction() as session:
                for post_id, held in by_post.items():
                    attached += await repository.attach(session, held, post_id=post_id, at=now)
        orphans = [m for m in ids if m not in holders]
        purged = 0
        if orphans:
            purged = await self._purge(repository.with_status(orphans, PENDING))
        return attached, purged


def rejected(rejection: ImageRejected, index: int) -> Problem:
    """The problem for the upload's index-th file; a 422 names the file, as validation does."""
    errors = [{"loc": ["body", "file", str(index)], "msg": rejection.detail, "type": "value_error"}]
    return Problem(
        rejection.status,
        rejection.detail,
        title=rejection.title,
        extra={"errors": errors} if rejection.status == 422 else None,
    )
