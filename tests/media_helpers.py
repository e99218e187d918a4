"""Helpers for upload tests: send an upload, fetch a variant, count what is stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from helpers import Api
from media_service.models import media
from post_service.models import post_media, posts

PROBLEM = "application/problem+json"
File = tuple[str, bytes, str]  # (filename, bytes, the content type the client claims)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"]
    return body


async def upload(
    api: Api, headers: dict[str, str], files: Sequence[File], **fields: str
) -> httpx.Response:
    """POST /api/upload with these files as `file` parts and these text fields."""
    parts = [("file", file) for file in files]
    return await api.client.post("/api/upload", headers=headers, files=parts, data=fields)


async def fetch_variant(api: Api, url: str) -> httpx.Response:
    """GET a variant URL with no auth, following a redirect to the object store if there is one."""
    response = await api.client.get(url)
    if response.status_code != 307:
        return response
    # A presigned URL is on the object store, not the gateway: fetch it over the network.
    async with httpx.AsyncClient() as network:
        stored_object = await network.get(response.headers["location"])
    stored_object.history = [response]
    return stored_object


async def _count(database: Any, table: Any) -> int:
    async with database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def stored(system: Any) -> dict[str, int]:
    """Rows of media, posts and post-media links, and objects in the blob store."""
    media_app = system.services["media-service"]
    posts_app = system.services["post-service"]
    return {
        "media": await _count(media_app.state.database, media),
        "posts": await _count(posts_app.state.database, posts),
        "post_media": await _count(posts_app.state.database, post_media),
        "blobs": await media_app.state.media.blobs.count(),
    }


async def swept(system: Any) -> dict[str, int]:
    """What is stored once media-service's sweeper has run with no grace left (as an hour
    after the upload): media no live post holds are gone, a post's media stay."""
    await system.services["media-service"].state.media.sweep(grace=timedelta(0))
    return await stored(system)
