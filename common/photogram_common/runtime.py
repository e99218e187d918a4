"""Process plumbing every service shares: its bus, its Redis, serving it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from typing import Any

import uvicorn
from photogram_contracts.events import ALL_TOPICS

from photogram_common.bus import EventBus
from photogram_common.bus.inprocess import InProcessEventBus
from photogram_common.bus.kafka import KafkaEventBus
from photogram_common.clients import ServiceClient, make_transport
from photogram_common.db import Database
from photogram_common.ids import IdGenerator
from photogram_common.settings import PlatformSettings
from photogram_common.workerids import WorkerIdLease


def make_bus(platform: PlatformSettings, *, client_id: str) -> EventBus:
    """Kafka when a bootstrap is configured, else the in-process bus (its log in the data dir)."""
    if platform.kafka_bootstrap:
        return KafkaEventBus(
            bootstrap=platform.kafka_bootstrap,
            topics=ALL_TOPICS,
            partitions=platform.kafka_partitions,
            client_id=client_id,
            prefix=platform.kafka_prefix,
            create_topics=platform.kafka_create_topics,
        )
    if platform.embedded:
        return InProcessEventBus(path=platform.data_dir / "bus.db")
    return InProcessEventBus()


def make_id_generator(
    platform: PlatformSettings, *, default_worker: int, database: Database
) -> tuple[IdGenerator, WorkerIdLease | None]:
    """IDs need a worker id unique among live processes: configured (a StatefulSet
    ordinal), the embedded process's own, or leased in the service's PostgreSQL at start."""
    if platform.worker_id is not None:
        return IdGenerator(platform.worker_id), None
    if database.engine.dialect.name != "postgresql":
        # SQLite: one process owns the file, so one worker id per service is unique.
        return IdGenerator(default_worker), None
    ids = IdGenerator(None)
    return ids, WorkerIdLease(database, ids)


def peer_client(
    platform: PlatformSettings, name: str, in_process: Mapping[str, Any] | None = None
) -> ServiceClient:
    """A client of the named peer: in-process when `in_process` has its app, else by URL."""
    app = (in_process or {}).get(name)
    return ServiceClient(
        name=name,
        base_url=platform.service_url(name),
        internal_secret=platform.internal_secret,
        timeout=platform.service_timeout_seconds,
        transport=make_transport(app),
        network=app is None,
    )


class GracefulServer(uvicorn.Server):
    """A uvicorn server whose graceful stop on SIGINT or SIGTERM is a clean exit (status 0).

    uvicorn re-raises the signal after its graceful shutdown, so a process that stopped
    exactly as asked would report death by signal (143) to compose and to the tests.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def server_for(
    app: Any, *, host: str, port: int, server_class: type[GracefulServer] = GracefulServer
) -> GracefulServer:
    """A server for one app: no access log (ours carries the request ID), graceful stop."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(os.environ.get("PHOTOGRAM_GRACEFUL_SECONDS", "20")),
    )
    return server_class(config)


def serve(app: Any, *, host: str, port: int) -> None:
    """Run one app until SIGINT/SIGTERM, shutting down gracefully."""
    server_for(app, host=host, port=port).run()
