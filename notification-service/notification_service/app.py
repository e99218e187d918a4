"""notification-service composition: its database, the event consumer and routes."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from photogram_contracts.events import (
    CommentCreated,
    CommentDeleted,
    FollowCreated,
    FollowDeleted,
    LikeCreated,
    LikeDeleted,
    PostDeleted,
    UserDeleted,
)

from notification_service.api import NotificationServiceRoot, router
from notification_service.service import Notifications
from notification_service.settings import NotificationServiceSettings
from photogram_common.bus import EventBus
from photogram_common.bus.consumer import EventConsumer
from photogram_common.db import Database
from photogram_common.lifecycle import database_for as _database_for
from photogram_common.lifecycle import service_lifespan
from photogram_common.roots import install_root
from photogram_common.runtime import make_id_generator
from photogram_common.settings import PlatformSettings
from photogram_common.web import add_health_routes, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def database_for(platform: PlatformSettings, settings: NotificationServiceSettings) -> Database:
    return _database_for(platform, url=settings.database_url, sqlite_name="notifications.db")


def create_app(
    platform: PlatformSettings,
    settings: NotificationServiceSettings,
    *,
    bus: EventBus,
    owns_bus: bool = True,
) -> FastAPI:
    database = database_for(platform, settings)
    ids, lease = make_id_generator(platform, default_worker=6, database=database)
    notifications = Notifications(database=database, ids=ids)
    # Follow, like and comment events make and undo notifications; a post's deletion takes
    # its notifications with it.
    consumer = EventConsumer(
        bus,
        group=settings.group,
        routes={
            FollowCreated: [notifications.on_follow],
            FollowDeleted: [notifications.on_unfollow],
            LikeCreated: [notifications.on_like],
            LikeDeleted: [notifications.on_unlike],
            CommentCreated: [notifications.on_comment],
            CommentDeleted: [notifications.on_comment_deleted],
            PostDeleted: [notifications.on_post_deleted],
            UserDeleted: [notifications.on_user_deleted],
        },
    )

    async def purge_deleted_posts() -> None:
        """Hourly: forget deleted posts older than any event about them."""
        while True:
            try:
                await notifications.purge_deleted_posts(
                    older_than=timedelta(days=settings.deleted_post_days)
                )
            except Exception:
                log.exception("purging deleted posts failed")
            await asyncio.sleep(3600)

    lifespan = service_lifespan(
        lease=lease,
        platform=platform,
        bus=bus,
        owns_bus=owns_bus,
        database=database,
        migrations=MIGRATIONS,
        tasks=[purge_deleted_posts],
        consumers=[consumer],
    )
    app = create_service_app(
        title="notification-service",
        lifespan=lifespan,
        bounds=platform.load_bounds,
    )
    install_root(
        app,
        NotificationServiceRoot(
            internal_secret=platform.internal_secret,
            notifications=notifications,
            database=database,
            consumer=consumer,
        ),
    )
    app.include_router(router)
    # Events wait in the broker while it is away: reported, not gating readiness.
    add_health_routes(
        app,
        lambda: {"database": database.ping, "events": bus.ping},
        informational=frozenset({"events"}),
    )
    return app
