"""media-service HTTP routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from photogram_contracts.internal import DigestRead, UploadRead
from photogram_contracts.schemas import AvatarRead, MediaRead

from media_service.avatars import Avatars
from media_service.service import IMMUTABLE, VARIANT_NAMES, MediaService
from media_service.uploads import parse_upload
from photogram_common.blobs import BlobNotFound
from photogram_common.bus.consumer import EventConsumer
from photogram_common.callers import Caller, CurrentUser
from photogram_common.db import Database
from photogram_common.ids import parse_id
from photogram_common.metrics import UPLOAD_STAGE_DURATION, timed
from photogram_common.problems import Problem
from photogram_common.roots import ServiceRoot, root_of

router = APIRouter()


@dataclass(frozen=True)
class MediaServiceRoot(ServiceRoot):
    """media-service's process, as its app.py composes it."""

    media: MediaService
    avatars: Avatars
    database: Database
    deleted_posts: EventConsumer
    max_upload_bytes: int


def root(request: Request) -> MediaServiceRoot:
    return root_of(request.app, MediaServiceRoot)


async def get_service(request: Request) -> MediaService:
    return root(request).media


Media = Annotated[MediaService, Depends(get_service)]


def _media_id(raw: str) -> int:
    parsed = parse_id(raw)
    if parsed is None:
        raise Problem(404, "No such media.", title="Not found")
    return parsed


@router.post("/internal/uploads", status_code=201)
async def upload(request: Request, service: Media, caller: CurrentUser) -> UploadRead:
    """Store the upload's media, pending, with a signed claim on them: post-service makes
    their post with it, and the sweeper deletes them if no post was made."""
    with timed(UPLOAD_STAGE_DURATION, stage="receive"):
        upload = await parse_upload(
            content_type=request.headers.get("content-type", ""),
            body=request.stream(),
            max_file_bytes=root(request).max_upload_bytes,
        )
    digest = upload.digest()
    media = await service.ingest(user_id=caller.user_id, upload=upload)
    return UploadRead(
        media=media,
        caption=upload.text("caption"),
        location=upload.text("location"),
        request_hash=digest,
        claim=service.claim_on(caller.user_id, media),
    )


@router.post("/internal/uploads/digest")
async def digest(request: Request, _: CurrentUser) -> DigestRead:
    """Read an upload without storing anything; only its digest (a retry with a used
    Idempotency-Key is compared with the first request by it)."""
    upload = await parse_upload(
        content_type=request.headers.get("content-type", ""),
        body=request.stream(),
        max_file_bytes=root(request).max_upload_bytes,
        spool=False,
    )
    return DigestRead(request_hash=upload.digest())


@router.get("/media/{media_id}")
async def get_media(media_id: str, service: Media, _: Caller) -> MediaRead:
    return await service.get(_media_id(media_id))


@router.get("/media/{media_id}/{variant}.jpg")
async def variant_bytes(media_id: str, variant: str, service: Media) -> Response:
    if variant not in VARIANT_NAMES:
        raise Problem(404, "No such media variant.", title="Not found")
    key, presigned = await service.variant_location(_media_id(media_id), variant)
    return await _image(service, key, presigned)


async def _image(service: MediaService, key: str, presigned: str | None) -> Response:
    """A stored JPEG's bytes, or a redirect to a presigned URL of it."""
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


@router.put("/internal/avatar")
async def put_avatar(request: Request, caller: CurrentUser) -> AvatarRead:
    """Make the upload's one image the caller's avatar (the old one is deleted)."""
    upload = await parse_upload(
        content_type=request.headers.get("content-type", ""),
        body=request.stream(),
        max_file_bytes=root(request).max_upload_bytes,
    )
    return await root(request).avatars.replace(user_id=caller.user_id, upload=upload)


@router.delete("/internal/avatar", status_code=204)
async def delete_avatar(request: Request, caller: CurrentUser) -> Response:
    await root(request).avatars.remove(caller.user_id)
    return Response(status_code=204)


@router.get("/avatars/{avatar_id}/{variant}.jpg")
async def avatar_bytes(request: Request, avatar_id: str, variant: str) -> Response:
    parsed = parse_id(avatar_id)
    if parsed is None:
        raise Problem(404, "No such avatar.", title="Not found")
    key, presigned = await root(request).avatars.location(parsed, variant)
    return await _image(root(request).media, key, presigned)
