"""Process plumbing every service shares: its bus, its Redis, serving it with uvicorn."""

from __future__ import annotations

import os
import secrets
from typing import Any

from photogram_common.bus import EventBus
from photogram_common.bus.inprocess import InProcessEventBus
from photogram_common.bus.kafka import KafkaEventBus
from photogram_common.clients import ServiceClient, make_transport
from photogram_common.events import ALL_TOPICS
from photogram_common.ids import IdGenerator
from photogram_common.settings import PlatformSettings


def make_bus(platform: PlatformSettings, *, client_id: str) -> EventBus:
    """Kafka when a bootstrap is configured, else the in-process bus."""
    if platform.kafka_bootstrap:
        return KafkaEventBus(
            bootstrap=platform.kafka_bootstrap,
            topics=ALL_TOPICS,
            partitions=platform.kafka_partitions,
            client_id=client_id,
            prefix=platform.kafka_prefix,
        )
    return InProcessEventBus()


def make_id_generator(platform: PlatformSettings, *, default_worker: int) -> IdGenerator:
    """IDs need a worker id unique among live processes: configured, or random per process."""
    if platform.worker_id is not None:
        return IdGenerator(platform.worker_id)
    if platform.embedded:
        return IdGenerator(default_worker)
    return IdGenerator(secrets.randbelow(1024))


def peer_client(
    platform: PlatformSettings, *, name: str, base_url: str, asgi_app: Any | None = None
) -> ServiceClient:
    return ServiceClient(
        name=name,
        base_url=base_url,
        internal_secret=platform.internal_secret,
        timeout=platform.service_timeout_seconds,
        transport=make_transport(asgi_app),
    )


def serve(app: Any, *, host: str, port: int) -> None:
    """Run one app with uvicorn until SIGINT/SIGTERM, shutting down gracefully."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(os.environ.get("PHOTOGRAM_GRACEFUL_SECONDS", "20")),
    )
