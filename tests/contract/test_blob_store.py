"""The blob store's contract, on local disk and (in the real mode) S3."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backends import REAL, require
from photogram_common.blobs import BlobNotFound, BlobStore, LocalBlobStore, S3BlobStore

STORES = ["local", *(["s3"] if REAL else [])]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    s3 = S3BlobStore(
        endpoint_url=require("PHOTOGRAM_S3_ENDPOINT_URL"),
        bucket=f"t-{uuid.uuid4().hex[:12]}",
        access_key=require("PHOTOGRAM_S3_ACCESS_KEY"),
        secret_key=require("PHOTOGRAM_S3_SECRET_KEY"),
        region=os.environ.get("PHOTOGRAM_S3_REGION", "us-east-1"),
    )
    await s3.open()
    await s3.ensure_bucket()
    try:
        yield s3
    finally:
        await s3.drop_bucket()
        await s3.close()


async def test_put_get_exists_delete(store: BlobStore) -> None:
    key = "media/1/large-abc.jpg"
    assert not await store.exists(key)
    await store.put(key, b"\xff\xd8 bytes", content_type="image/jpeg")
    assert await store.exists(key)
    assert await store.get(key) == b"\xff\xd8 bytes"
    await store.put(key, b"replaced", content_type="image/jpeg")
    assert await store.get(key) == b"replaced"
    await store.delete(key)
    assert not await store.exists(key)
    await store.delete(key)  # deleting what is gone is not an error


async def test_get_of_a_missing_key_raises_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.get("media/none/missing.jpg")


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a/../../b", ""])
async def test_keys_cannot_escape(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.put(key, b"x", content_type="text/plain")


async def test_count_and_ping(store: BlobStore) -> None:
    await store.ping()
    for i in range(3):
        await store.put(f"media/{i}/small-x.jpg", b"x", content_type="image/jpeg")
    assert await store.count() == 3  # type: ignore[attr-defined]


async def test_presigned_url_serves_the_object_without_credentials(store: BlobStore) -> None:
    await store.put("media/7/thumbnail-x.jpg", b"jpeg-bytes", content_type="image/jpeg")
    url = await store.presigned_get_url("media/7/thumbnail-x.jpg", expires_in=60)
    if isinstance(store, LocalBlobStore):
        # Local disk has no URL of its own: media-service serves the bytes itself.
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        assert response.status_code == 200
        assert response.content == b"jpeg-bytes"
        assert response.headers["content-type"] == "image/jpeg"
        tampered = await client.get(url.replace("thumbnail-x", "thumbnail-y"))
        assert tampered.status_code == 403
