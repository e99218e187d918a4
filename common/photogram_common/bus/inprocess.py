"""An in-process event bus with Kafka's semantics: partitions by key, groups, committed offsets."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import defaultdict
from collections.abc import Sequence

from photogram_common.bus import Handler, Message, OutgoingMessage

log = logging.getLogger(__name__)


class InProcessEventBus:
    """Keeps each topic as partitioned logs in memory; consumers resume from committed offsets."""

    def __init__(self, *, partitions: int = 4, retry_delay: float = 0.2) -> None:
        self._partitions = partitions
        self._retry_delay = retry_delay
        self._logs: dict[str, list[list[Message]]] = {}
        self._committed: dict[tuple[str, str, int], int] = defaultdict(int)
        self._appended = asyncio.Condition()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    def _log(self, topic: str) -> list[list[Message]]:
        return self._logs.setdefault(topic, [[] for _ in range(self._partitions)])

    def partition_for(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self._partitions

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        async with self._appended:
            for out in messages:
                partition = self.partition_for(out.key)
                log_ = self._log(out.topic)[partition]
                log_.append(Message(out.topic, partition, len(log_), out.key, out.value))
            self._appended.notify_all()

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self._committed[(group, topic, partition)]

    def commit(self, group: str, message: Message) -> None:
        key = (group, message.topic, message.partition)
        self._committed[key] = max(self._committed[key], message.offset + 1)

    def pending(self, group: str, topics: Sequence[str]) -> list[Message]:
        """The next uncommitted message of each partition, in partition order."""
        heads = []
        for topic in topics:
            for partition, log_ in enumerate(self._log(topic)):
                offset = self.committed(group, topic, partition)
                if offset < len(log_):
                    heads.append(log_[offset])
        return heads

    def lag(self, group: str, topics: Sequence[str]) -> int:
        return sum(
            len(log_) - self.committed(group, topic, partition)
            for topic in topics
            for partition, log_ in enumerate(self._log(topic))
        )

    async def wait_for_messages(self, group: str, topics: Sequence[str]) -> None:
        async with self._appended:
            await self._appended.wait_for(lambda: bool(self.pending(group, topics)))

    def consumer(self, *, group: str, topics: Sequence[str], handler: Handler) -> InProcessConsumer:
        return InProcessConsumer(self, group=group, topics=list(topics), handler=handler)


class InProcessConsumer:
    """One member of a group; handles the head of each partition, then commits it."""

    def __init__(
        self, bus: InProcessEventBus, *, group: str, topics: list[str], handler: Handler
    ) -> None:
        self._bus = bus
        self._group = group
        self._topics = topics
        self._handler = handler
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        while not self._stopped.is_set():
            heads = self._bus.pending(self._group, self._topics)
            if not heads:
                waiter = asyncio.ensure_future(
                    self._bus.wait_for_messages(self._group, self._topics)
                )
                stopper = asyncio.ensure_future(self._stopped.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            for message in heads:
                if self._stopped.is_set():
                    return
                await self._deliver(message)

    async def _deliver(self, message: Message) -> None:
        try:
            await self._handler(message)
        except Exception:
            # Not committed: the same message comes back after a pause, as with Kafka.
            log.exception("handler failed; will retry", extra={"topic": message.topic})
            await asyncio.sleep(self._bus._retry_delay)
            return
        self._bus.commit(self._group, message)

    async def stop(self) -> None:
        self._stopped.set()
