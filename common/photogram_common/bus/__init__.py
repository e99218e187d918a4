"""The event bus port: publish keyed messages; consume them in groups, at least once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Where a consumer puts a record it gave up on (photogram_common.deadletters).
DEADLETTER_TOPIC = "photogram.deadletters.v1"


# A record's headers, as Kafka has them: (name, bytes) pairs, in order. The bus carries the
# trace context in them (`traceparent`, photogram_common.tracing); events never read them.
Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: Headers = ()


Handler = Callable[[Message], Awaitable[None]]


class Stopped(Exception):
    """Raised by a handler to leave its message uncommitted: the consumer is stopping, or
    its partition has moved to another member of the group."""


class Consumer(Protocol):
    async def run(self) -> None:
        """Deliver messages to the handler until stopped; commit each only after it succeeded.

        A handler that raises is given the message again after a pause; one that raises
        `Stopped` leaves it uncommitted and is not given it again by this run. Handled
        offsets are committed before `run` returns, also when its task is cancelled.
        """

    async def stop(self) -> None: ...

    def owns(self, message: Message) -> bool:
        """Whether the message's partition is still this member's (a handler that retries
        for long asks, so that two members do not both work on it after a rebalance)."""


class EventBus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send messages; on return each is durably accepted, in order per key."""

    def consumer(self, *, group: str, topics: Sequence[str], handler: Handler) -> Consumer: ...

    async def read_topic(self, topic: str) -> list[Message]:
        """Every record the topic holds now, oldest first per partition (operator tools)."""

    async def ping(self) -> None: ...
