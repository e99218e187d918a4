"""post-service composition: its database, outbox relay, consumers and routes."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from photogram_contracts.events import UserDeleted

from photogram_common.bus import EventBus
from photogram_common.bus.consumer import EventConsumer
from photogram_common.db import Database
from photogram_common.lifecycle import database_for as _database_for
from photogram_common.lifecycle import service_lifespan
from photogram_common.outbox import Outbox, OutboxRelay
from photogram_common.roots import install_root
from photogram_common.runtime import make_id_generator
from photogram_common.settings import PlatformSettings
from photogram_common.web import add_health_routes, create_service_app
from post_service.api import PostServiceRoot, router
from post_service.engagement import Engagement
from post_service.models import outbox as outbox_table
from post_service.service import PostService
from post_service.settings import PostServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"
ACCOUNTS_GROUP = "post-service-accounts"
log = logging.getLogger(__name__)


def database_for(platform: PlatformSettings, settings: PostServiceSettings) -> Database:
    return _database_for(platform, url=settings.database_url, sqlite_name="posts.db")


def create_app(
    platform: PlatformSettings,
    settings: PostServiceSettings,
    *,
    bus: EventBus,
    owns_bus: bool = True,
) -> FastAPI:
    database = database_for(platform, settings)
    ids, lease = make_id_generator(platform, default_worker=2, database=database)
    outbox = Outbox(outbox_table)
    # post-service calls no peer: an upload's media come with media-service's signed claim.
    posts = PostService(
        database=database,
        outbox=outbox,
        ids=ids,
        claim_secret=platform.internal_secret,
        idempotency_window=timedelta(hours=settings.idempotency_key_hours),
    )

    async def purge_idempotency_keys() -> None:
        """Hourly: forget the idempotency keys older than their window."""
        while True:
            try:
                await posts.purge_idempotency_keys()
            except Exception:
                log.exception("purging idempotency keys failed")
            await asyncio.sleep(3600)

    engagement = Engagement(database=database, outbox=outbox, ids=ids)

    async def remove_account(event: UserDeleted) -> None:
        await posts.remove_user(event.user_id)
        await engagement.remove_user(event.user_id)

    # A deleted account's posts, likes and comments go by its event (docs/decisions.md).
    accounts = EventConsumer(bus, group=ACCOUNTS_GROUP, routes={UserDeleted: [remove_account]})
    relay = OutboxRelay(database=database, outbox=outbox, bus=bus)
    lifespan = service_lifespan(
        lease=lease,
        platform=platform,
        bus=bus,
        owns_bus=owns_bus,
        database=database,
        migrations=MIGRATIONS,
        tasks=[relay.run, purge_idempotency_keys],
        consumers=[accounts],
    )
    app = create_service_app(
        title="post-service",
        lifespan=lifespan,
        bounds=platform.load_bounds,
    )
    install_root(
        app,
        PostServiceRoot(
            internal_secret=platform.internal_secret,
            posts=posts,
            engagement=engagement,
            database=database,
            relay=relay,
        ),
    )
    app.include_router(router)
    # The outbox holds events while the broker is away: reported, not gating readiness.
    add_health_routes(
        app,
        lambda: {"database": database.ping, "events": bus.ping},
        informational=frozenset({"events"}),
    )
    return app
