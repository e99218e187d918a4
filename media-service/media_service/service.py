"""media-service use cases: process an upload into stored variants, look media up, remove them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from media_service.imaging import ImageRejected, ProcessedImage, process_image
from media_service.models import media
from media_service.uploads import ParsedUpload, discard
from photogram_common.blobs import BlobStore
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.problems import Problem
from photogram_common.schemas import MediaRead, VariantRead
from photogram_common.timeutil import utcnow

log = logging.getLogger(__name__)
VARIANT_NAMES = ("thumbnail", "small", "medium", "large")
# Keys are content-derived, so a variant's bytes never change under its URL.
IMMUTABLE = "public, max-age=31536000, immutable"


def variant_key(media_id: int, name: str, data: bytes) -> str:
    """Content-derived: the bytes' hash is in the key, so a key never changes meaning."""
    return f"media/{media_id}/{name}-{hashlib.sha256(data).hexdigest()[:32]}.jpg"


@dataclass
class MediaService:
    database: Database
    blobs: BlobStore
    ids: IdGenerator
    executor: Executor | None
    max_image_pixels: int
    public_base_url: str | None = None
    presigned_url_seconds: int = 3600

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
            self.executor, _process_in_worker, path, self.max_image_pixels
        )

    async def ingest(self, *, user_id: int, upload: ParsedUpload) -> list[MediaRead]:
        """Process every file, store the variants, then record all media in one transaction."""
        stored: list[str] = []
        rows: list[dict[str, Any]] = []
        try:
            for index, item in enumerate(upload.files):
                result = await self._process(str(item.path))
                if isinstance(result, ImageRejected):
                    raise _rejected(result, index)
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
                rows.append(
                    {
                        "id": media_id,
                        "user_id": user_id,
                        "content_type": result.content_type,
                        "width": result.width,
                        "height": result.height,
                        "blurhash": result.blurhash,
                        "status": "ready",
                        "variants": variants,
                        "created_at": utcnow(),
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

    async def _delete_blobs(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                await self.blobs.delete(key)
            except Exception:
                log.exception("could not delete blob", extra={"key": key})

    async def lookup(self, media_ids: Sequence[int]) -> list[MediaRead]:
        if not media_ids:
            return []
        async with self.database.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(media).where(media.c.id.in_(media_ids), media.c.status == "ready")
                    )
                )
                .mappings()
                .all()
            )
        return [self.media_read(row) for row in rows]

    async def get(self, media_id: int) -> MediaRead:
        found = await self.lookup([media_id])
        if not found:
            raise Problem(404, "No such media.", title="Not found")
        return found[0]

    async def variant_location(self, media_id: int, name: str) -> tuple[str, str | None]:
        """The variant's key and, when the store can give one, a presigned URL to it."""
        async with self.database.transaction() as session:
            query = select(media.c.variants).where(media.c.id == media_id)
            row = (await session.execute(query)).first()
        if row is None or name not in row.variants:
            raise Problem(404, "No such media variant.", title="Not found")
        key: str = row.variants[name]["key"]
        return key, await self.blobs.presigned_get_url(key, expires_in=self.presigned_url_seconds)

    async def remove(self, *, user_id: int, media_ids: Sequence[int]) -> int:
        """Delete the caller's media and their objects (an orphan clean-up after a failed post)."""
        async with self.database.transaction() as session:
            rows = (
                await session.execute(
                    select(media.c.id, media.c.variants).where(
                        media.c.id.in_(media_ids), media.c.user_id == user_id
                    )
                )
            ).all()
            await session.execute(delete(media).where(media.c.id.in_([r.id for r in rows])))
        await self._delete_blobs([v["key"] for r in rows for v in r.variants.values()])
        return len(rows)


def _rejected(rejection: ImageRejected, index: int) -> Problem:
    """The problem for the upload's index-th file; a 422 names the file, as validation does."""
    errors = [{"loc": ["body", "file", str(index)], "msg": rejection.detail, "type": "value_error"}]
    return Problem(
        rejection.status,
        rejection.detail,
        title=rejection.title,
        extra={"errors": errors} if rejection.status == 422 else None,
    )


def _process_in_worker(path: str, max_pixels: int) -> ProcessedImage | ImageRejected:
    # Rejections come back as values: exceptions cross the process boundary less reliably.
    try:
        return process_image(path, max_pixels=max_pixels)
    except ImageRejected as exc:
        return exc
