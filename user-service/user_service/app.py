"""user-service composition: its database, outbox relay, post-event consumer and routes."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from photogram_contracts.events import Envelope, PostCreated, PostDeleted

from photogram_common.bus import EventBus
from photogram_common.bus.consumer import EventConsumer, WithEnvelope
from photogram_common.db import Database
from photogram_common.lifecycle import database_for as _database_for
from photogram_common.lifecycle import service_lifespan
from photogram_common.outbox import Outbox, OutboxRelay
from photogram_common.redis import make_redis
from photogram_common.roots import install_root
from photogram_common.runtime import make_id_generator
from photogram_common.sessions import RevokedSessions
from photogram_common.settings import PlatformSettings
from photogram_common.web import add_health_routes, create_service_app
from user_service.api import UserServiceRoot, router
from user_service.models import outbox as outbox_table
from user_service.passwords import Passwords
from user_service.service import UserService
from user_service.settings import UserServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"
POST_COUNTER_GROUP = "user-service-post-counter"
log = logging.getLogger(__name__)


def database_for(platform: PlatformSettings, settings: UserServiceSettings) -> Database:
    return _database_for(platform, url=settings.database_url, sqlite_name="users.db")


def create_app(
    platform: PlatformSettings,
    settings: UserServiceSettings,
    *,
    bus: EventBus,
    owns_bus: bool = True,
) -> FastAPI:
    """Build the app; the bus is shared in the embedded mode, so its owner starts it."""
    database = database_for(platform, settings)
    ids, lease = make_id_generator(platform, default_worker=1, database=database)
    outbox = Outbox(outbox_table)
    # Only to mark ended sessions for the gateway (photogram_common.sessions).
    redis = make_redis(platform.redis_url, cluster=platform.redis_cluster)
    users = UserService(
        database=database,
        outbox=outbox,
        ids=ids,
        jwt_secret=platform.jwt_secret,
        token_ttl_seconds=platform.access_token_ttl_seconds,
        seen_resolution_seconds=settings.seen_resolution_seconds,
        celebrity_threshold=platform.celebrity_threshold,
        refresh_ttl_seconds=platform.refresh_token_ttl_seconds,
        revoked=RevokedSessions(redis, access_token_ttl_seconds=platform.access_token_ttl_seconds),
        passwords=Passwords(
            memory_kib=settings.password_memory_kib, time_cost=settings.password_time_cost
        ),
    )

    async def count_post(envelope: Envelope) -> None:
        assert isinstance(envelope.event, PostCreated | PostDeleted)
        await users.on_post_event(event_id=envelope.event_id, event=envelope.event)

    # posts_count deduplicates by event ID, so the route is given the envelope.
    post_counter = EventConsumer(
        bus,
        group=POST_COUNTER_GROUP,
        routes={PostCreated: [WithEnvelope(count_post)], PostDeleted: [WithEnvelope(count_post)]},
    )

    async def purge_processed_events() -> None:
        """Hourly: forget the IDs of events older than any redelivery."""
        while True:
            try:
                await users.purge_processed_events(
                    older_than=timedelta(days=settings.processed_events_days)
                )
            except Exception:
                log.exception("purging processed events failed")
            await asyncio.sleep(3600)

    relay = OutboxRelay(database=database, outbox=outbox, bus=bus)
    lifespan = service_lifespan(
        lease=lease,
        platform=platform,
        bus=bus,
        owns_bus=owns_bus,
        database=database,
        migrations=MIGRATIONS,
        tasks=[relay.run, purge_processed_events],
        consumers=[post_counter],
        on_stop=[redis.aclose],
    )
    app = create_service_app(
        title="user-service",
        lifespan=lifespan,
        bounds=platform.load_bounds,
    )
    install_root(
        app,
        UserServiceRoot(
            internal_secret=platform.internal_secret,
            users=users,
            database=database,
            relay=relay,
            post_counter=post_counter,
            active_days=platform.active_days,
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
