"""The stores the PHOTOGRAM_* settings name, opened as the services open them: the same
settings classes, the same `database_for`, Redis client, bus and blob store."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import media_service.app as media_app
import post_service.app as post_app
import user_service.app as user_app
from feed_service.app import build_feed_service
from feed_service.service import FeedService, RebuildSlots
from feed_service.settings import FeedServiceSettings
from media_service.service import MediaService
from media_service.settings import MediaServiceSettings, S3Settings
from photogram_admin.sources import DatabaseFollowers, DatabasePostCatalog
from photogram_common.blobs import S3BlobStore
from photogram_common.bus import EventBus
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.redis import make_redis
from photogram_common.runtime import make_bus
from photogram_common.settings import PlatformSettings
from post_service.settings import PostServiceSettings
from user_service.settings import UserServiceSettings


class Unavailable(Exception):
    """A store this command needs is not there in this mode (the message says why)."""


EMBEDDED_REDIS = (
    "no PHOTOGRAM_REDIS_URL: the embedded mode's Redis (fakeredis) lives inside the running "
    "`make run` process and is empty at each start, so there is nothing to rebuild from "
    "here: every timeline is rebuilt at its owner's next feed read after a start"
)


# Each service's database as the service opens it: its settings, its file when embedded.
_DATABASES: dict[str, tuple[Callable[[PlatformSettings, Any], Database], Any, str]] = {
    "user-service": (user_app.database_for, UserServiceSettings, "users.db"),
    "post-service": (post_app.database_for, PostServiceSettings, "posts.db"),
    "media-service": (media_app.database_for, MediaServiceSettings, "media.db"),
}


@dataclass
class Stores:
    """Opened on first use, closed together."""

    platform: PlatformSettings
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _databases: dict[str, Database] = field(default_factory=dict)

    def database(self, service: str) -> Database:
        """user-service's, post-service's or media-service's database."""
        if service not in self._databases:
            make, settings_class, name = _DATABASES[service]
            settings = settings_class()
            if not settings.database_url and not (self.platform.data_dir / name).exists():
                raise Unavailable(
                    f"no {name} in {self.platform.data_dir} and no database URL for {service}:"
                    " set PHOTOGRAM_DATA_DIR (embedded) or the service's *_DATABASE_URL"
                )
            database = make(self.platform, settings)
            self.stack.push_async_callback(database.dispose)
            self._databases[service] = database
        return self._databases[service]

    def redis(self, *, decode: bool = True) -> Any:
        if not self.platform.redis_url:
            raise Unavailable(EMBEDDED_REDIS)
        client = make_redis(
            self.platform.redis_url, cluster=self.platform.redis_cluster, decode_responses=decode
        )
        self.stack.push_async_callback(client.aclose)
        return client

    def feed(self) -> FeedService:
        """feed-service's use cases on the databases; rebuilds bounded by the caller."""
        feed = build_feed_service(
            self.platform,
            FeedServiceSettings(),
            redis=self.redis(),
            raw=self.redis(decode=False),
            users=DatabaseFollowers(self.database("user-service")),
            posts=DatabasePostCatalog(self.database("post-service")),
        )
        feed.rebuilds = RebuildSlots(0)
        return feed

    async def media(self) -> MediaService:
        """media-service's use cases (its sweeper) on its database and blob store."""
        settings = MediaServiceSettings()
        blobs = media_app.blob_store_for(self.platform, S3Settings())
        if isinstance(blobs, S3BlobStore):
            await blobs.open()
            self.stack.push_async_callback(blobs.close)
        return MediaService(
            database=self.database("media-service"),
            blobs=blobs,
            ids=IdGenerator(None),
            executor=None,
            max_image_pixels=self.platform.max_image_pixels,
            orphan_grace=timedelta(seconds=settings.orphan_grace_seconds),
            posts=DatabasePostCatalog(self.database("post-service")),
        )

    async def bus(self) -> EventBus:
        """The bus the services share: Kafka, or the embedded mode's file (taken: the
        embedded system must be stopped)."""
        if not self.platform.kafka_bootstrap and not self.platform.embedded:
            raise Unavailable("no PHOTOGRAM_KAFKA_BOOTSTRAP: there is no bus to read")
        from photogram_common.bus.inprocess import BusInUse

        bus = make_bus(self.platform, client_id="photogram-admin")
        try:
            await bus.start()
        except BusInUse as exc:
            raise Unavailable(f"{exc}: stop the embedded system first") from exc
        self.stack.push_async_callback(bus.close)
        return bus

    async def close(self) -> None:
        await self.stack.aclose()
