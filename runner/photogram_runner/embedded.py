"""The embedded mode: all seven services in one process, the gateway reaching them over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

import fanout_worker.app as fanout_app
import feed_service.app as feed_app
import gateway.app as gateway_app
import media_service.app as media_app
import notification_service.app as notification_app
import post_service.app as post_app
import user_service.app as user_app
from fanout_worker.settings import FanoutSettings
from feed_service.settings import FeedServiceSettings
from gateway.settings import GatewaySettings
from media_service.settings import MediaServiceSettings
from notification_service.settings import NotificationServiceSettings
from photogram_common.bus import EventBus
from photogram_common.runtime import make_bus
from photogram_common.settings import PlatformSettings
from post_service.settings import PostServiceSettings
from user_service.settings import UserServiceSettings


@dataclass
class System:
    """The composed apps; each backend is whatever the settings name (in-process by default)."""

    gateway: FastAPI
    services: dict[str, FastAPI]
    bus: EventBus


def compose(platform: PlatformSettings, *, bus: EventBus | None = None) -> System:
    """Build every app of the system, wired to each other in-process."""
    bus = bus or make_bus(platform, client_id="photogram")
    services: dict[str, Any] = {}
    services["media-service"] = media_app.create_app(
        platform, MediaServiceSettings(), bus=bus, owns_bus=False, in_process=services
    )
    services["user-service"] = user_app.create_app(
        platform, UserServiceSettings(), bus=bus, owns_bus=False
    )
    services["post-service"] = post_app.create_app(
        platform, PostServiceSettings(), bus=bus, owns_bus=False, in_process=services
    )
    services["feed-service"] = feed_app.create_app(
        platform, FeedServiceSettings(), in_process=services
    )
    services["fanout-worker"] = fanout_app.create_app(
        platform, FanoutSettings(), bus=bus, owns_bus=False, in_process=services
    )
    services["notification-service"] = notification_app.create_app(
        platform, NotificationServiceSettings(), bus=bus, owns_bus=False
    )
    gateway = gateway_app.create_app(platform, GatewaySettings(), in_process=services)
    return System(gateway=gateway, services=services, bus=bus)


@asynccontextmanager
async def running(system: System) -> AsyncIterator[System]:
    """Start the bus and every service's lifespan (the gateway's is its server's to run)."""
    async with AsyncExitStack() as stack:
        await system.bus.start()
        stack.push_async_callback(system.bus.close)
        for app in system.services.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield system
