"""media-service HTTP routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from media_service.service import IMMUTABLE, VARIANT_NAMES, MediaService
from media_service.uploads import parse_upload
from photogram_common.blobs import BlobNotFound
from photogram_common.callers import Caller, CurrentUser
from photogram_common.ids import parse_id
from photogram_common.problems import Problem
from photogram_common.schemas import MediaRead

router = APIRouter()


class UploadRead(BaseModel):
    media: list[MediaRead]
    caption: str | None
    location: str | None


class MediaIdsCreate(BaseModel):
    media_ids: list[str] = Field(max_length=100)


class MediaPage(BaseModel):
    items: list[MediaRead]


def get_service(request: Request) -> MediaService:
    service: MediaService = request.app.state.media
    return service


Media = Annotated[MediaService, Depends(get_service)]


def _media_id(raw: str) -> int:
    parsed = parse_id(raw)
    if parsed is None:
        raise Problem(404, "No such media.", title="Not found")
    return parsed


@router.post("/internal/uploads", status_code=201)
async def upload(request: Request, service: Media, caller: CurrentUser) -> UploadRead:
    upload = await parse_upload(
        content_type=request.headers.get("content-type", ""),
        body=request.stream(),
        max_file_bytes=request.app.state.max_upload_bytes,
    )
    # A form sends an empty field for an empty box: that is no caption, not an empty one.
    caption, location = upload.fields.get("caption") or None, upload.fields.get("location") or None
    media = await service.ingest(user_id=caller.user_id, upload=upload)
    return UploadRead(media=media, caption=caption, location=location)


@router.post("/internal/media/lookup")
async def lookup(body: MediaIdsCreate, service: Media, _: Caller) -> MediaPage:
    ids = [m for m in (parse_id(i) for i in body.media_ids) if m is not None]
    return MediaPage(items=await service.lookup(ids))


@router.post("/internal/media/delete", status_code=204)
async def remove(body: MediaIdsCreate, service: Media, caller: CurrentUser) -> Response:
    ids = [m for m in (parse_id(i) for i in body.media_ids) if m is not None]
    await service.remove(user_id=caller.user_id, media_ids=ids)
    return Response(status_code=204)


@router.get("/media/{media_id}")
async def get_media(media_id: str, service: Media, _: Caller) -> MediaRead:
    return await service.get(_media_id(media_id))


@router.get("/media/{media_id}/{variant}.jpg")
async def variant_bytes(media_id: str, variant: str, service: Media) -> Response:
    if variant not in VARIANT_NAMES:
        raise Problem(404, "No such media variant.", title="Not found")
    key, presigned = await service.variant_location(_media_id(media_id), variant)
    if presigned is not None:
        # The URL expires, so the redirect itself must not be cached.
        return RedirectResponse(
            presigned,
            status_code=307,
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )
    try:
        data = await service.blobs.get(key)
    except BlobNotFound as exc:
        raise Problem(404, "No such media variant.", title="Not found") from exc
    return Response(
        data,
        media_type="image/jpeg",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": IMMUTABLE,
            "Content-Security-Policy": "default-src 'none'",
        },
    )
