"""fanout-worker composition: a consumer-group member plus a small health app for probes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from fanout_worker.engagement import ENGAGEMENT_GROUP_SUFFIX, EngagementHandlers
from fanout_worker.service import FanoutHandlers
from fanout_worker.settings import FanoutSettings
from photogram_common.bus import EventBus
from photogram_common.bus.consumer import EventConsumer
from photogram_common.engagement_cache import EngagementCache
from photogram_common.follows import FollowSets
from photogram_common.lifecycle import service_lifespan
from photogram_common.peer_clients import HttpFeedCache, HttpFollowers, HttpPostCatalog
from photogram_common.redis import make_redis
from photogram_common.roots import install_root
from photogram_common.runtime import peer_client
from photogram_common.settings import PlatformSettings
from photogram_common.timelines import timeline_store_for
from photogram_common.web import add_health_routes, create_service_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FanoutWorkerRoot:
    """fanout-worker's process (it serves only probes: nothing but tests reads this)."""

    handlers: FanoutHandlers
    consumer: EventConsumer
    engagement: EngagementHandlers
    engagement_consumer: EventConsumer


def create_app(
    platform: PlatformSettings,
    settings: FanoutSettings,
    *,
    bus: EventBus,
    owns_bus: bool = True,
    in_process: Mapping[str, Any] | None = None,
) -> FastAPI:
    """The worker consumes post and follow events while the app serves /healthz and /readyz."""
    redis = make_redis(platform.redis_url, cluster=platform.redis_cluster)
    clients = {
        name: peer_client(platform, name, in_process)
        for name in ("user-service", "post-service", "feed-service")
    }
    timelines = timeline_store_for(platform, redis)
    handlers = FanoutHandlers(
        timelines=timelines,
        follows=FollowSets(redis, ttl_seconds=timelines.ttl_seconds),
        users=HttpFollowers(clients["user-service"]),
        posts=HttpPostCatalog(clients["post-service"]),
        feed=HttpFeedCache(clients["feed-service"]),
        celebrity_threshold=platform.celebrity_threshold,
        page_size=settings.follower_page_size,
        backfill_posts=settings.backfill_posts,
    )

    # Every event type the worker handles, through the consumer path every service shares.
    consumer = EventConsumer(bus, group=settings.group, routes=handlers.routes())
    engagement = EngagementHandlers(
        EngagementCache(
            redis,
            counts_ttl_seconds=settings.counts_cache_seconds,
            liked_ttl_seconds=timelines.ttl_seconds,
        )
    )
    engagement_consumer = EventConsumer(
        bus, group=settings.group + ENGAGEMENT_GROUP_SUFFIX, routes=engagement.routes()
    )
    lifespan = service_lifespan(
        platform=platform,
        bus=bus,
        owns_bus=owns_bus,
        consumers=[consumer, engagement_consumer],
        on_stop=[*(c.close for c in clients.values()), redis.aclose],
    )
    app = create_service_app(title="fanout-worker", lifespan=lifespan)
    install_root(
        app,
        FanoutWorkerRoot(
            handlers=handlers,
            consumer=consumer,
            engagement=engagement,
            engagement_consumer=engagement_consumer,
        ),
    )
    add_health_routes(app, lambda: {"redis": redis.ping, "events": bus.ping})
    return app
