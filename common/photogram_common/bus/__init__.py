"""The event bus port: publish keyed messages; consume them in groups, at least once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes


Handler = Callable[[Message], Awaitable[None]]


class Consumer(Protocol):
    async def run(self) -> None:
        """Deliver messages to the handler until stopped; commit each only after it succeeded."""

    async def stop(self) -> None: ...


class EventBus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send messages; on return each is durably accepted, in order per key."""

    def consumer(self, *, group: str, topics: Sequence[str], handler: Handler) -> Consumer: ...

    async def ping(self) -> None: ...
