"""Avatars: one per user, two centre-cropped squares, replaced whole.

The new squares are stored first, then the row is replaced in one statement, then the old
squares' objects are deleted: a reader sees the old avatar or the new one, never a mix,
and a failure leaves no object that a row does not name (the new ones are deleted again).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from photogram_contracts.events import UserDeleted
from photogram_contracts.schemas import AvatarRead, VariantRead

from media_service import repository
from media_service.imaging.pipeline import ImageRejected, ProcessedImage
from media_service.imaging.worker import avatar_in_worker
from media_service.service import IMMUTABLE, delete_blobs, rejected
from media_service.uploads import ParsedUpload, discard
from photogram_common.blobs import BlobStore
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.problems import Problem
from photogram_common.timeutil import utcnow


def avatar_key(user_id: int, avatar_id: int, name: str) -> str:
    return f"avatars/{user_id}/{avatar_id}/{name}.jpg"


@dataclass
class Avatars:
    database: Database
    blobs: BlobStore
    ids: IdGenerator
    executor: Executor | None
    max_image_pixels: int
    presigned_url_seconds: int = 3600

    def avatar_read(self, avatar_id: int, variants: dict[str, Any]) -> AvatarRead:
        return AvatarRead(
            **{
                name: VariantRead(
                    url=f"/api/avatars/{avatar_id}/{name}.jpg",
                    width=spec["width"],
                    height=spec["height"],
                )
                for name, spec in variants.items()
            }
        )

    async def replace(self, *, user_id: int, upload: ParsedUpload) -> AvatarRead:
        """Make the upload's one image the user's avatar."""
        stored: list[str] = []
        old = None
        try:
            if len(upload.files) != 1:
                detail = "Send exactly one file."
                errors = [{"loc": ["body", "file"], "msg": detail, "type": "value_error"}]
                raise Problem(422, detail, title="Validation failed", extra={"errors": errors})
            path = upload.files[0].path
            assert path is not None  # parsed with spooling
            loop = asyncio.get_running_loop()
            result: ProcessedImage | ImageRejected = await loop.run_in_executor(
                self.executor, avatar_in_worker, str(path), self.max_image_pixels
            )
            if isinstance(result, ImageRejected):
                raise rejected(result, 0)
            avatar_id = self.ids.next_id()
            variants: dict[str, Any] = {}
            for variant in result.variants:
                key = avatar_key(user_id, avatar_id, variant.name)
                await self.blobs.put(
                    key, variant.data, content_type="image/jpeg", cache_control=IMMUTABLE
                )
                stored.append(key)
                variants[variant.name] = {
                    "key": key,
                    "width": variant.width,
                    "height": variant.height,
                }
            async with self.database.transaction() as session:
                old = await repository.avatar_of(session, user_id)
                await repository.delete_avatar(session, user_id)
                await repository.insert_avatar(
                    session, user_id=user_id, avatar_id=avatar_id, variants=variants, at=utcnow()
                )
        except BaseException:
            await asyncio.shield(delete_blobs(self.blobs, stored))
            raise
        finally:
            discard(upload.directory)
        if old is not None:
            await delete_blobs(self.blobs, [v["key"] for v in old["variants"].values()])
        return self.avatar_read(avatar_id, variants)

    async def remove(self, user_id: int) -> None:
        """Delete the user's avatar, if any: the row, then its objects."""
        async with self.database.transaction() as session:
            old = await repository.avatar_of(session, user_id)
            await repository.delete_avatar(session, user_id)
        if old is not None:
            await delete_blobs(self.blobs, [v["key"] for v in old["variants"].values()])

    async def on_user_deleted(self, event: UserDeleted) -> None:
        await self.remove(event.user_id)

    async def location(self, avatar_id: int, name: str) -> tuple[str, str | None]:
        """The variant's key and, when the store can give one, a presigned URL to it."""
        async with self.database.transaction() as session:
            variants = await repository.avatar_variants(session, avatar_id)
        if variants is None or name not in variants:
            raise Problem(404, "No such avatar.", title="Not found")
        key: str = variants[name]["key"]
        return key, await self.blobs.presigned_get_url(key, expires_in=self.presigned_url_seconds)
