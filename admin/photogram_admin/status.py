"""status: each outbox's unsent rows and the age of the oldest, and each consumer group's
lag per partition (the log's end minus the group's committed offset)."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Table

from photogram_common.bus import EventBus
from photogram_common.db import Database
from photogram_common.outbox import Outbox, OutboxRelay


@dataclass(frozen=True)
class OutboxStatus:
    service: str
    unsent: int
    oldest_seconds: float


@dataclass(frozen=True, order=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


async def outbox_status(
    service: str, database: Database, table: Table, *, bus: EventBus
) -> OutboxStatus:
    """The owning service's relay's own measure (nothing is claimed or sent)."""
    relay = OutboxRelay(database=database, outbox=Outbox(table), bus=bus)
    unsent, age = await relay.measure()
    return OutboxStatus(service=service, unsent=unsent, oldest_seconds=age)


async def kafka_lag(bootstrap: str, *, prefix: str = "") -> list[PartitionLag]:
    """Every consumer group of this deployment (its prefix) on Kafka: committed offsets from
    the group coordinator, ends from the partitions' high watermarks."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="photogram-admin")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="photogram-admin")
    await admin.start()
    try:
        await consumer.start()
        found: list[PartitionLag] = []
        for group, _protocol in await admin.list_consumer_groups():
            if not group.startswith(prefix):
                continue
            committed = await admin.list_consumer_group_offsets(group)
            if not committed:
                continue
            ends = await consumer.end_offsets(list(committed))
            found += [
                PartitionLag(
                    group=group.removeprefix(prefix),
                    topic=tp.topic.removeprefix(prefix),
                    partition=tp.partition,
                    committed=meta.offset,
                    end=ends[tp],
                )
                for tp, meta in committed.items()
            ]
        return sorted(found, key=lambda lag: (lag.group, lag.topic, lag.partition))
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await admin.close()


def embedded_lag(bus_file: Path) -> list[PartitionLag]:
    """The embedded bus's groups, read from its file without taking it (so also while the
    system runs; the offsets there are as of the bus's last flush, a moment ago)."""
    if not bus_file.exists():
        return []
    conn = sqlite3.connect(f"file:{bus_file}?mode=ro", uri=True)
    try:
        ends = {
            (topic, partition): end
            for topic, partition, end in conn.execute(
                'SELECT topic, partition, max("offset") + 1 FROM records GROUP BY topic, partition'
            )
        }
        rows = conn.execute('SELECT grp, topic, partition, "offset" FROM offsets').fetchall()
    finally:
        conn.close()
    return sorted(
        PartitionLag(group=g, topic=t, partition=p, committed=o, end=ends.get((t, p), o))
        for g, t, p, o in rows
    )
