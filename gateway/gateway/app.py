"""The gateway's composition: the public routes, its edge policy and one client per service."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from gateway.addresses import ClientAddresses, parse_networks
from gateway.api import EdgePolicy, GatewayRoot, edge, engagement, notifications, posts, users
from gateway.bodylimit import BodyLimitMiddleware, HeaderLimitMiddleware
from gateway.cors import AllowedOriginsCors
from gateway.deadline import RequestDeadlineMiddleware
from gateway.docs import add_docs_routes
from gateway.openapi import public_openapi
from gateway.ratelimit import RateLimiter
from gateway.service import Peers
from gateway.settings import GatewaySettings
from gateway.webclient import add_web_client
from photogram_common.fastroutes import FastRoutes
from photogram_common.redis import make_redis
from photogram_common.roots import install_root
from photogram_common.runtime import peer_client
from photogram_common.settings import PlatformSettings
from photogram_common.web import ReadinessCheck, add_health_routes, create_service_app

# The home feed: nearly all of the traffic, with its own fast route and in-flight bound.
FEED_PATH = "/api/feed"


def create_app(
    platform: PlatformSettings,
    settings: GatewaySettings,
    *,
    in_process: Mapping[str, Any] | None = None,
) -> FastAPI:
    """Build the gateway; `in_process` maps service names to ASGI apps in the embedded mode."""
    peers = Peers(
        users=peer_client(platform, "user-service", in_process),
        posts=peer_client(platform, "post-service", in_process),
        media=peer_client(platform, "media-service", in_process),
        feed=peer_client(platform, "feed-service", in_process),
        notifications=peer_client(platform, "notification-service", in_process),
    )
    # Only its health is asked: the worker serves no API.
    fanout = peer_client(platform, "fanout-worker", in_process)
    redis = make_redis(platform.redis_url, cluster=platform.redis_cluster)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for client in (
                peers.users,
                peers.posts,
                peers.media,
                peers.feed,
                peers.notifications,
                fanout,
            ):
                await client.close()
            await redis.aclose()

    app = create_service_app(
        title="Photogram API",
        service="gateway",
        version="1.0.0",
        description="The public API of Photogram, served by its gateway.",
        lifespan=lifespan,
        bounds=dataclasses.replace(
            platform.load_bounds, paths={FEED_PATH: settings.feed_bound(platform)}
        ),
        # The gateway sets each request's deadline itself; a client's budget header is not one.
        caller_deadlines=False,
        openapi_url="/api/openapi.json",
        # Served by add_docs_routes, from local assets instead of a CDN.
        docs_url=None,
        redoc_url=None,
        # A trailing-slash redirect would be built from the Host header: a 404 instead.
        redirect_slashes=False,
        # Inside the request-ID middleware, so a 413 or 431 carries the ID too.
        middleware=[
            Middleware(
                RequestDeadlineMiddleware,
                seconds=settings.request_deadline_seconds,
                upload_seconds=settings.upload_deadline_seconds,
            ),
            Middleware(HeaderLimitMiddleware, limit=settings.max_header_bytes),
            Middleware(BodyLimitMiddleware, limit=settings.max_json_body_bytes),
            # Innermost: the feed's common request, inside every limit above.
            Middleware(FastRoutes, routes={FEED_PATH: posts.feed_fast}),
        ],
    )
    if settings.cors_origins:
        # Outermost, so every answer to an allowed origin carries its CORS headers, a fast
        # 503 and a 500 included, and a preflight costs no in-flight slot (docs/decisions.md).
        app.add_middleware(AllowedOriginsCors, origins=settings.cors_origins)
    install_root(
        app,
        GatewayRoot(
            peers=peers,
            policy=EdgePolicy(
                jwt_secret=platform.jwt_secret,
                limiter=RateLimiter(redis),
                per_minute=platform.rate_limit_per_minute,
                auth_divisor=settings.auth_rate_divisor,
                addresses=ClientAddresses(parse_networks(settings.trusted_proxies)),
            ),
            max_upload_bytes=platform.max_upload_mb * 1024 * 1024,
        ),
    )
    app.include_router(users.router)
    app.include_router(posts.router)
    app.include_router(engagement.router)
    app.include_router(notifications.router)
    add_web_client(app)
    add_docs_routes(app, openapi_url="/api/openapi.json")
    peer_checks = {
        "user-service": peers.users.ping,
        "post-service": peers.posts.ping,
        "media-service": peers.media.ping,
        "feed-service": peers.feed.ping,
        "fanout-worker": fanout.ping,
        "notification-service": peers.notifications.ping,
    }
    names = frozenset({*peer_checks, "redis"})

    def checks() -> dict[str, ReadinessCheck]:
        # Redis is the rate limiter's: its check is the limiter's own client.
        return {**peer_checks, "redis": edge(app).policy.limiter.ping}

    # Nothing here gates the gateway's readiness: each peer has its own, and a route whose
    # peer is down answers 503 on its own; a stopped worker only delays feeds; without Redis
    # rate limits fail open. Every replica shares these dependencies, so failing them all
    # would turn each route's 503 into connections refused for every route. Reported only.
    add_health_routes(app, checks, include_in_schema=True, informational=names)
    app.openapi = public_openapi(app)  # type: ignore[method-assign,unused-ignore]
    return app
