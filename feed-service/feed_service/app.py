"""feed-service composition: Redis timelines, the post cache, user- and post-service clients."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from photogram_contracts.peers import Followers, PostCatalog
from starlette.middleware import Middleware

from feed_service.api import FeedServiceRoot, feed_fast, router
from feed_service.engagement import PageEngagement
from feed_service.hydration import PostBodies
from feed_service.page_read import PageRead
from feed_service.service import FeedService, PullSlots, RebuildSlots
from feed_service.settings import FeedServiceSettings
from photogram_common.bus import EventBus
from photogram_common.engagement_cache import EngagementCache
from photogram_common.fastroutes import FastRoutes
from photogram_common.follows import FollowSets
from photogram_common.lifecycle import service_lifespan
from photogram_common.peer_clients import HttpFollowers, HttpPostCatalog
from photogram_common.redis import make_redis
from photogram_common.roots import install_root
from photogram_common.runtime import peer_client
from photogram_common.settings import PlatformSettings
from photogram_common.timelines import timeline_store_for
from photogram_common.web import add_health_routes, create_service_app


def build_feed_service(
    platform: PlatformSettings,
    settings: FeedServiceSettings,
    *,
    redis: Any,
    raw: Any,
    users: Followers,
    posts: PostCatalog,
) -> FeedService:
    """The feed's use cases over two Redis clients (text, and bytes for the read path) and
    the owners of the follow graph and the posts (the app, and photogram-admin)."""
    timelines = timeline_store_for(platform, redis)
    return FeedService(
        timelines=timelines,
        follows=FollowSets(redis, ttl_seconds=timelines.ttl_seconds),
        reads=PageRead(
            raw,
            ttl_seconds=timelines.ttl_seconds,
            refresh_below_seconds=timelines.ttl_seconds - settings.refresh_ttl_every_seconds,
            seen_seconds=settings.seen_every_seconds,
            single_node=not platform.redis_cluster,
        ),
        bodies=PostBodies(redis=raw, posts=posts, ttl_seconds=settings.post_cache_seconds),
        # Counts live as long as the bodies they join; liked sets as long as timelines.
        engagement=PageEngagement(
            cache=EngagementCache(
                raw,
                counts_ttl_seconds=settings.post_cache_seconds,
                liked_ttl_seconds=timelines.ttl_seconds,
            ),
            posts=posts,
        ),
        users=users,
        posts=posts,
        rebuild_wait_seconds=settings.rebuild_wait_seconds,
        rebuilds=RebuildSlots(settings.rebuild_bound(embedded=platform.embedded)),
        pulls=PullSlots(settings.max_pull_reads) if settings.max_pull_reads else None,
    )


def create_app(
    platform: PlatformSettings,
    settings: FeedServiceSettings,
    *,
    bus: EventBus | None = None,
    owns_bus: bool = False,
    in_process: Mapping[str, Any] | None = None,
) -> FastAPI:
    """Build the app; feed-service reads Redis and calls peers, it takes no events."""
    redis = make_redis(platform.redis_url, cluster=platform.redis_cluster)
    # The read path's client returns bytes: cached post bodies are joined into the page as is.
    raw = make_redis(platform.redis_url, cluster=platform.redis_cluster, decode_responses=False)
    user_client = peer_client(platform, "user-service", in_process)
    post_client = peer_client(platform, "post-service", in_process)
    feed = build_feed_service(
        platform,
        settings,
        redis=redis,
        raw=raw,
        users=HttpFollowers(user_client),
        posts=HttpPostCatalog(post_client),
    )
    lifespan = service_lifespan(
        platform=platform,
        bus=None,
        owns_bus=False,
        on_stop=[feed.drain, user_client.close, post_client.close, redis.aclose, raw.aclose],
    )
    app = create_service_app(
        title="feed-service",
        lifespan=lifespan,
        bounds=platform.load_bounds,
        # Inside the deadline, request-ID and in-flight layers create_service_app adds.
        middleware=[Middleware(FastRoutes, routes={"/feed": feed_fast})],
    )
    install_root(app, FeedServiceRoot(internal_secret=platform.internal_secret, feed=feed))
    app.include_router(router)
    # Without Redis the feed is read from the databases (FeedService.page): reported only.
    add_health_routes(
        app, lambda: {"redis": feed.timelines.redis.ping}, informational=frozenset({"redis"})
    )
    return app
