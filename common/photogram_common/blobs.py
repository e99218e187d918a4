"""The blob store port and its adapters: S3 (aioboto3) and a local directory."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from pathlib import Path
from typing import Any, Protocol


class BlobNotFound(KeyError):
    """No object under that key."""


class BlobStore(Protocol):
    async def put(
        self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None
    ) -> None:
        """Store the object; cache_control is served with it where the store serves objects."""

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing one is not an error."""

    async def exists(self, key: str) -> bool: ...

    async def presigned_get_url(self, key: str, *, expires_in: int) -> str | None:
        """A time-limited URL that serves the object without credentials, or None if the
        store cannot make one (the service then serves the bytes itself)."""

    async def ping(self) -> None: ...


def _check_key(key: str) -> str:
    # Keys are ours (content hashes), but a store must never be a path-traversal gadget.
    if not key or key.startswith("/") or ".." in key.split("/") or "\\" in key:
        raise ValueError(f"invalid blob key: {key!r}")
    return key


class LocalBlobStore:
    """Objects as files under a root directory, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    async def put(
        self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None
    ) -> None:
        # Files carry no headers: whoever serves them sets the type and caching.
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(key).unlink)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def presigned_get_url(self, key: str, *, expires_in: int) -> str | None:
        _check_key(key)
        return None

    async def ping(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def count(self) -> int:
        return await asyncio.to_thread(
            lambda: sum(1 for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else 0
        )


@functools.cache
def _data_loader() -> Any:
    from botocore.loaders import create_loader

    return create_loader()


class S3BlobStore:
    """Objects in an S3 bucket; one client for the store's lifetime (open/close)."""

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
    ) -> None:
        import aioboto3
        from aiobotocore.session import get_session
        from botocore.config import Config

        self.bucket = bucket
        core = get_session()
        # botocore's service models and endpoint data, parsed once per process rather than
        # once per store (~0.15 s of CPU a client otherwise).
        core.register_component("data_loader", _data_loader())
        self._session = aioboto3.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            botocore_session=core,
        )
        self._endpoint_url = endpoint_url
        self._config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3})
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def open(self) -> None:
        self._client = await self._stack.enter_async_context(
            self._session.client("s3", endpoint_url=self._endpoint_url, config=self._config)
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            await self._client.create_bucket(Bucket=self.bucket)

    async def put(
        self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None
    ) -> None:
        # Presigned and CDN reads are answered by the store, with the headers kept here.
        extra = {"CacheControl": cache_control} if cache_control else {}
        await self._client.put_object(
            Bucket=self.bucket, Key=_check_key(key), Body=data, ContentType=content_type, **extra
        )

    async def get(self, key: str) -> bytes:
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=_check_key(key))
        except self._client.exceptions.NoSuchKey as exc:
            raise BlobNotFound(key) from exc
        async with response["Body"] as body:
            data: bytes = await body.read()
            return data

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=_check_key(key))

    async def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await self._client.head_object(Bucket=self.bucket, Key=_check_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def presigned_get_url(self, key: str, *, expires_in: int) -> str | None:
        url: str = await self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": _check_key(key)},
            ExpiresIn=expires_in,
        )
        return url

    async def ping(self) -> None:
        await self._client.head_bucket(Bucket=self.bucket)

    async def drop_bucket(self) -> None:
        """Delete every object and then the bucket (tests and tear-downs; missing is fine)."""
        from botocore.exceptions import ClientError

        try:
            paginator = self._client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket):
                for item in page.get("Contents", []):
                    await self._client.delete_object(Bucket=self.bucket, Key=item["Key"])
            await self._client.delete_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "404"):
                raise

    async def count(self) -> int:
        paginator = self._client.get_paginator("list_objects_v2")
        total = 0
        async for page in paginator.paginate(Bucket=self.bucket):
            total += len(page.get("Contents", []))
        return total
