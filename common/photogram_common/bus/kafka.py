"""The event bus on Apache Kafka (aiokafka): idempotent producer, manual commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata

from photogram_common.bus import DEADLETTER_TOPIC, Handler, Message, OutgoingMessage, Stopped
from photogram_common.metrics import CONSUMER_LAG, current_service

log = logging.getLogger(__name__)


class KafkaEventBus:
    """Publishes with acks=all and idempotence; makes its topics and the dead letters' on start."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topics: Sequence[str] = (),
        partitions: int = 8,
        client_id: str = "photogram",
        prefix: str = "",
        create_topics: bool = True,
    ) -> None:
        self._bootstrap = bootstrap
        # False: the topics are made elsewhere (an operator), and a missing one is an error.
        self._create_topics = create_topics
        # A prefix on every topic and group keeps separate deployments (or test runs) apart.
        self._prefix = prefix
        self._topics = [prefix + t for t in dict.fromkeys([*topics, DEADLETTER_TOPIC])]
        self._partitions = partitions
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        await self.ensure_topics()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
        )
        await self._producer.start()

    async def ensure_topics(self) -> None:
        if not self._topics:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=self._client_id)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name=t, num_partitions=self._partitions, replication_factor=1)
                for t in self._topics
                if t not in existing
            ]
            if missing and not self._create_topics:
                names = ", ".join(t.name for t in missing)
                raise RuntimeError(f"Kafka topics missing (not created here): {names}")
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        finally:
            await admin.close()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ping(self) -> None:
        if self._producer is None:
            raise RuntimeError("producer not started")
        await self._producer.client.fetch_all_metadata()

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self._producer is None:
            raise RuntimeError("producer not started")
        # Queue all, then wait for all: one round of acks for the batch, order kept per key.
        futures = [
            await self._producer.send(
                self._prefix + m.topic,
                m.value,
                key=_key_bytes(m.key),
                headers=list(m.headers) or None,
            )
            for m in messages
        ]
        await asyncio.gather(*futures)

    async def read_topic(self, topic: str) -> list[Message]:
        """Read the topic from its start to its current end, outside any group."""
        if self._producer is None:
            raise RuntimeError("producer not started")
        name = self._prefix + topic
        metadata = await self._producer.client.fetch_all_metadata()
        partitions = [TopicPartition(name, p) for p in metadata.partitions_for_topic(name) or ()]
        if not partitions:
            return []
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
        )
        try:
            await reader.start()
            reader.assign(partitions)
            ends = await reader.end_offsets(partitions)
            await reader.seek_to_beginning(*partitions)
            found: list[Message] = []
            behind = set(partitions)
            while behind:
                batches = await reader.getmany(*partitions, timeout_ms=500)
                for tp, records in batches.items():
                    kept = [r for r in records if r.offset < ends[tp]]
                    found += [_message(record, self._prefix) for record in kept]
                behind = {tp for tp in behind if await reader.position(tp) < ends[tp]}
            return sorted(found, key=lambda m: (m.partition, m.offset))
        finally:
            await reader.stop()

    def consumer(self, *, group: str, topics: Sequence[str], handler: Handler) -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap=self._bootstrap,
            group=self._prefix + group,
            topics=[self._prefix + t for t in topics],
            handler=handler,
            prefix=self._prefix,
        )


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka: untyped
    """Commits what was handled before a partition moves to another member."""

    def __init__(self, owner: KafkaConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner.commit_handled(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


class KafkaConsumer:
    """A consumer-group member: hands each message to the handler, commits after success."""

    def __init__(
        self,
        *,
        bootstrap: str,
        group: str,
        topics: list[str],
        handler: Handler,
        retry_delay: float = 0.5,
        prefix: str = "",
    ) -> None:
        self._prefix = prefix
        self._bootstrap = bootstrap
        self._group = group
        self._consumer: AIOKafkaConsumer | None = None
        self._topics = topics
        self._handler = handler
        self._retry_delay = retry_delay
        self._handled: dict[TopicPartition, int] = {}
        # The next offset to handle of each partition this member handled a record of.
        self._next: dict[TopicPartition, int] = {}
        self._stopped = asyncio.Event()

    async def commit_handled(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        offsets = {
            tp: OffsetAndMetadata(offset, "")
            for tp, offset in self._handled.items()
            if partitions is None or tp in partitions
        }
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on: the new owner re-reads from the last commit (at least once).
            log.warning("offset commit failed", extra={"error": repr(exc)})
        for tp in offsets:
            self._handled.pop(tp, None)

    async def run(self) -> None:
        # aiokafka binds its consumer to the running loop, so it is made here, not in __init__.
        consumer = self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=200,
        )
        try:
            # Inside the try: a consumer stopped or cancelled while it starts is closed too.
            await consumer.start()
            consumer.subscribe(self._topics, listener=_CommitOnRevoke(self))
            while not self._stopped.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=200)
                for tp, records in batches.items():
                    for record in records:
                        if tp not in consumer.assignment() or self._stopped.is_set():
                            break
                        if not await self._handle(tp, record):
                            # Left uncommitted: fetched again from here if still ours.
                            if tp in consumer.assignment() and not self._stopped.is_set():
                                consumer.seek(tp, record.offset)
                            break
                await self.commit_handled()
                self._measure_lag(consumer)
        finally:
            # Also when stopped mid-batch or cancelled: handled records are not handled again.
            with contextlib.suppress(Exception):
                await self.commit_handled()
            await consumer.stop()

    def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Each assigned partition's lag: its high watermark (as the last fetch saw it) minus
        the next offset to handle; a partition with nothing handled yet by this member is
        left as last measured."""
        service = current_service()
        group = self._group.removeprefix(self._prefix)
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            at = self._next.get(tp)
            if end is None or at is None:
                continue
            topic = tp.topic.removeprefix(self._prefix)
            CONSUMER_LAG.labels(service, group, topic, str(tp.partition)).set(max(0, end - at))

    async def _handle(self, tp: TopicPartition, record: object) -> bool:
        """Hand one record to the handler until it succeeds; False if it was left."""
        message = _message(record, self._prefix)
        while not self._stopped.is_set():
            try:
                await self._handler(message)
            except Stopped:
                return False
            except Exception:
                log.exception("handler failed; will retry", extra={"topic": message.topic})
                await asyncio.sleep(self._retry_delay)
                continue
            self._handled[tp] = self._next[tp] = message.offset + 1
            return True
        return False

    async def stop(self) -> None:
        self._stopped.set()

    def owns(self, message: Message) -> bool:
        if self._consumer is None:
            return False
        tp = TopicPartition(self._prefix + message.topic, message.partition)
        return tp in self._consumer.assignment()


def _key_bytes(key: str) -> bytes:
    # A key that arrived as bytes that are not UTF-8 goes back out as those bytes.
    return key.encode("utf-8", "surrogateescape")


def _message(record: Any, prefix: str) -> Message:
    return Message(
        topic=record.topic.removeprefix(prefix),
        partition=record.partition,
        offset=record.offset,
        key=(record.key or b"").decode("utf-8", "surrogateescape"),
        value=record.value if record.value is not None else b"",
        headers=tuple((name, bytes(value or b"")) for name, value in record.headers or ()),
    )
