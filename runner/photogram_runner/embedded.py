"""The embedded mode: all seven services in one process, the gateway reaching them over ASGI."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
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
from photogram_common.logs import logging_as
from photogram_common.runtime import GracefulServer, make_bus
from photogram_common.settings import PlatformSettings
from photogram_runner.console import base_url, ready_line
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
        platform, PostServiceSettings(), bus=bus, owns_bus=False
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
        for name, app in system.services.items():
            await stack.enter_async_context(_lifespan_as(name, app))
        yield system


@asynccontextmanager
async def _lifespan_as(name: str, app: FastAPI) -> AsyncIterator[None]:
    """An app's lifespan, its start and stop (and the tasks it starts) logging as `name`."""
    lifespan = app.router.lifespan_context(app)
    with logging_as(name):
        await lifespan.__aenter__()
    try:
        yield
    finally:
        with logging_as(name):
            await lifespan.__aexit__(None, None, None)


class EmbeddedServer(GracefulServer):
    """The gateway's server in the embedded mode: the runner owns the process's signals (a
    stop may be asked while the services are still starting, or stopping), and the server
    says once where to go when it is ready."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            print(ready_line(base_url(self.config.host, self._bound_port())), flush=True)

    def _bound_port(self) -> int:
        # PHOTOGRAM_PORT=0 asks for any free port: the socket knows which.
        for server in self.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)


class StopRequests:
    """SIGINT (Ctrl-C) and SIGTERM for the whole run. While the services start, the first
    stops the run once they have (a start cut short leaves half-migrated files) and a
    second gives up at once; while serving, uvicorn's graceful stop, a second forcing it;
    while the services stop, nothing more."""

    def __init__(self, main: asyncio.Task[Any] | None) -> None:
        self.asked = False
        self.stopping = False
        self.server: GracefulServer | None = None
        self._main = main

    def __call__(self, sig: signal.Signals) -> None:
        if self.server is not None:
            self.server.handle_exit(sig, None)
        elif self.asked and not self.stopping and self._main is not None:
            self._main.cancel()
        self.asked = True
