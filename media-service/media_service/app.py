"""media-service composition: database, blob store (S3 or local disk), image process pool,
the post.deleted consumer and the orphan sweeper."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from photogram_contracts.events import PostDeleted, UserDeleted

from media_service.api import MediaServiceRoot, router
from media_service.avatars import Avatars
from media_service.service import MediaService
from media_service.settings import MediaServiceSettings, S3Settings
from photogram_common.blobs import LocalBlobStore, S3BlobStore
from photogram_common.bus import EventBus
from photogram_common.bus.consumer import EventConsumer
from photogram_common.db import Database
from photogram_common.lifecycle import database_for as _database_for
from photogram_common.lifecycle import service_lifespan
from photogram_common.peer_clients import HttpPostCatalog
from photogram_common.roots import install_root
from photogram_common.runtime import make_id_generator, peer_client
from photogram_common.settings import PlatformSettings
from photogram_common.web import add_health_routes, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


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


def _late(apps: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """An in-process peer looked up when first called: post-service is composed after
    media-service, so it is not in `apps` yet."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await apps[name](scope, receive, send)

    return {name: app}


def create_app(
    platform: PlatformSettings,
    settings: MediaServiceSettings,
    *,
    bus: EventBus,
    owns_bus: bool = True,
    s3: S3Settings | None = None,
    in_process: Mapping[str, Any] | None = None,
) -> FastAPI:
    """Build the app; the bus is shared in the embedded mode, so its owner starts it.

    media-service publishes nothing; it consumes post.deleted (a deleted post's media go
    with it) and asks post-service, when sweeping, which live posts hold old pending media.
    """
    database = database_for(platform, settings)
    ids, lease = make_id_generator(platform, default_worker=3, database=database)
    blobs = blob_store_for(platform, s3 or S3Settings())
    post_client = peer_client(
        platform, "post-service", None if in_process is None else _late(in_process, "post-service")
    )
    service = MediaService(
        database=database,
        blobs=blobs,
        ids=ids,
        executor=None,
        max_image_pixels=platform.max_image_pixels,
        public_base_url=settings.public_base_url,
        presigned_url_seconds=settings.presigned_url_seconds,
        claim_secret=platform.internal_secret,
        claim_ttl=timedelta(seconds=settings.claim_ttl_seconds),
        orphan_grace=timedelta(seconds=settings.orphan_grace_seconds),
        posts=HttpPostCatalog(post_client),
    )
    avatars = Avatars(
        database=database,
        blobs=blobs,
        ids=ids,
        executor=None,
        max_image_pixels=platform.max_image_pixels,
        presigned_url_seconds=settings.presigned_url_seconds,
    )
    # A deleted post's media and objects go with it (docs/media.md, "Deleting a post"); a
    # deleted account's avatar with it.
    deleted_posts = EventConsumer(
        bus,
        group=settings.group,
        routes={PostDeleted: [service.on_post_deleted], UserDeleted: [avatars.on_user_deleted]},
    )

    async def sweep_orphans() -> None:
        """Every few minutes: delete media no post uses, past their grace."""
        while True:
            await asyncio.sleep(settings.sweep_every_seconds)
            try:
                await service.sweep()
            except Exception:
                log.exception("sweeping orphan media failed")

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
        service.executor = avatars.executor = pool["executor"]

    async def close_resources() -> None:
        if "executor" in pool:
            pool["executor"].shutdown(wait=True, cancel_futures=True)
        if isinstance(blobs, S3BlobStore):
            await blobs.close()

    lifespan = service_lifespan(
        lease=lease,
        platform=platform,
        bus=bus,
        owns_bus=owns_bus,
        database=database,
        migrations=MIGRATIONS,
        tasks=[sweep_orphans],
        consumers=[deleted_posts],
        on_start=[open_resources],
        on_stop=[close_resources, post_client.close],
    )
    app = create_service_app(
        title="media-service",
        lifespan=lifespan,
        bounds=platform.load_bounds,
    )
    install_root(
        app,
        MediaServiceRoot(
            internal_secret=platform.internal_secret,
            media=service,
            avatars=avatars,
            database=database,
            deleted_posts=deleted_posts,
            max_upload_bytes=platform.max_upload_mb * 1024 * 1024,
        ),
    )
    app.include_router(router)
    # Uploads and reads need no broker: without it only deleted posts' media wait.
    add_health_routes(
        app,
        lambda: {"database": database.ping, "blobs": blobs.ping, "events": bus.ping},
        informational=frozenset({"events"}),
    )
    return app
