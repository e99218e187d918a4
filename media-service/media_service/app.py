"""media-service composition: database, blob store (S3 or local disk), image process pool."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from media_service.api import router
from media_service.service import MediaService
from media_service.settings import MediaServiceSettings, S3Settings
from photogram_common.blobs import LocalBlobStore, S3BlobStore
from photogram_common.bus import EventBus
from photogram_common.db import Database
from photogram_common.lifecycle import database_for as _database_for
from photogram_common.lifecycle import service_lifespan
from photogram_common.runtime import make_id_generator
from photogram_common.settings import PlatformSettings
from photogram_common.web import add_health_routes, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def database_for(platform: PlatformSettings, settings: MediaServiceSettings) -> Database:
    return _database_for(platform, url=settings.database_url, sqlite_name="media.db")


def blob_store_for(platform: PlatformSettings, s3: S3Settings) -> LocalBlobStore | S3BlobStore:
    """S3 when a bucket is configured, else files under the data directory."""
    if s3.bucket:
        return S3BlobStore(
            endpoint_url=s3.endpoint_url,
            bucket=s3.bucket,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            region=s3.region,
        )
    return LocalBlobStore(platform.data_dir / "media")


def create_app(
    platform: PlatformSettings,
    settings: MediaServiceSettings,
    *,
    bus: EventBus | None = None,
    owns_bus: bool = False,
    s3: S3Settings | None = None,
) -> FastAPI:
    """Build the app; media-service publishes no events, so it takes no bus of its own."""
    database = database_for(platform, settings)
    ids, lease = make_id_generator(platform, default_worker=3, database=database)
    blobs = blob_store_for(platform, s3 or S3Settings())
    service = MediaService(
        database=database,
        blobs=blobs,
        ids=ids,
        executor=None,
        max_image_pixels=platform.max_image_pixels,
        public_base_url=settings.public_base_url,
        presigned_url_seconds=settings.presigned_url_seconds,
    )
    pool: dict[str, Any] = {}

    async def open_resources() -> None:
        if isinstance(blobs, S3BlobStore):
            await blobs.open()
            await blobs.ensure_bucket()
        # forkserver: forking a process that runs an event loop and threads is unsafe.
        workers = settings.image_workers or os.cpu_count() or 1
        pool["executor"] = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
        )
        service.executor = pool["executor"]

    async def close_resources() -> None:
        if "executor" in pool:
            pool["executor"].shutdown(wait=True, cancel_futures=True)
        if isinstance(blobs, S3BlobStore):
            await blobs.close()

    lifespan = service_lifespan(
        lease=lease,
        platform=platform,
        bus=None,
        owns_bus=False,
        database=database,
        migrations=MIGRATIONS,
        on_start=[open_resources],
        on_stop=[close_resources],
    )
    app = create_service_app(
        title="media-service", lifespan=lifespan, max_in_flight=platform.in_flight_bound
    )
    app.state.media = service
    app.state.database = database
    app.state.internal_secret = platform.internal_secret
    app.state.max_upload_bytes = platform.max_upload_mb * 1024 * 1024
    app.include_router(router)
    add_health_routes(app, lambda: {"database": database.ping, "blobs": blobs.ping})
    return app
