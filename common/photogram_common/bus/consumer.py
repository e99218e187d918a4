"""The one consumer path of every consuming service: decode once, dispatch by event type,
retry with backoff, and give a record up to the dead-letter topic so its partition moves on.

Failures are split in two (docs/decisions.md, "Poison events"):

- permanent (a peer's 4xx such as a 404, a record that does not decode, a bug): retried
  `attempts` times with exponential backoff, then dead-lettered; a record that does not
  decode is dead-lettered at once, since retrying cannot change its bytes;
- transient (a peer's 5xx/503, 401/403/408/429, unreachable peers, Redis or the database
  down, timeouts): retried with exponential backoff capped at `max_backoff_seconds`, and
  dead-lettered only after `transient_deadline_seconds` of failing (0: never).

Each failing record is logged once with its traceback (a transient one again at most once a
minute, without it); each dead letter is logged once and counted in `stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import redis.exceptions
import sqlalchemy.exc
from aiokafka.errors import KafkaError
from photogram_contracts.events import Envelope, Event
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from photogram_common import tracing
from photogram_common.bus import DEADLETTER_TOPIC, EventBus, Message, OutgoingMessage, Stopped
from photogram_common.deadletters import DeadLetter
from photogram_common.metrics import DEAD_LETTERS, count, current_service
from photogram_common.problems import Problem

log = logging.getLogger(__name__)


class RetryPolicy(BaseSettings):
    """How a consumer retries (PHOTOGRAM_CONSUMER_*); small defaults, so tests are quick."""

    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_CONSUMER_", extra="ignore")

    attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = Field(default=0.1, gt=0)
    max_backoff_seconds: float = Field(default=30.0, gt=0)
    transient_deadline_seconds: float = Field(default=900.0, ge=0)

    def delay(self, failures: int) -> float:
        """The pause after the n-th failure in a row: doubling, capped."""
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (failures - 1)))


class PermanentError(Exception):
    """A handler's way to say that retrying this event cannot help."""


class TransientError(Exception):
    """A handler's way to say that the event is fine and something it needs is not."""


# Statuses of a peer that say "not now" rather than "never": the peer's own failure,
# overload, or credentials between services (a deployment's fault, not the event's).
_TRANSIENT_STATUSES = frozenset({401, 403, 408, 425, 429})
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    OSError,
    TimeoutError,
    httpx.TransportError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    # A Redis Cluster none of whose nodes answers, or a slot no node serves (not a RedisError).
    redis.exceptions.RedisClusterException,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    KafkaError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure may pass by itself (retry on) or is the event's own (dead-letter)."""
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, Problem):
        return exc.status >= 500 or exc.status in _TRANSIENT_STATUSES
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _TRANSIENT_TYPES)


EventHandler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class WithEnvelope:
    """A route whose handler is given the whole envelope (to deduplicate by its event ID)."""

    handler: Callable[[Envelope], Awaitable[None]]


Route = EventHandler | WithEnvelope
Routes = Mapping[type[Event], Sequence[Route]]


class EventConsumer:
    """A consumer-group member that hands each event to the handlers its type routes to.

    Handlers must be idempotent: delivery is at least once, and a retry runs every handler
    of the event again.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        group: str,
        routes: Routes,
        policy: RetryPolicy | None = None,
        topics: Sequence[str] | None = None,
    ) -> None:
        self.group = group
        self.routes: dict[type[Event], list[Route]] = {t: list(r) for t, r in routes.items()}
        self.topics = list(topics) if topics else sorted({t.topic for t in self.routes})
        self.policy = policy or RetryPolicy()
        self.stats: Counter[str] = Counter()
        self._bus = bus
        self._stopped = asyncio.Event()
        self.inner = bus.consumer(group=group, topics=self.topics, handler=self.on_message)

    async def run(self) -> None:
        await self.inner.run()

    def owns(self, message: Message) -> bool:
        return self.inner.owns(message)

    async def stop(self) -> None:
        self._stopped.set()
        await self.inner.stop()

    async def dispatch(self, envelope: Envelope) -> None:
        """Run every handler routed for the event's type, in order."""
        for route in self.routes.get(type(envelope.event), ()):
            if isinstance(route, WithEnvelope):
                await route.handler(envelope)
            else:
                await route(envelope.event)

    async def on_message(self, message: Message) -> None:
        """Handle one record; return once it may be committed (handled or dead-lettered).

        While tracing is on, the handling is a consumer span, the child of the publisher's
        (the record's `traceparent` header), so the handlers' work joins the event's trace.
        """
        if not tracing.ENABLED:
            await self._on_message(message)
            return
        with tracing.consumer_span(
            message.headers,
            topic=message.topic,
            group=self.group,
            partition=message.partition,
            offset=message.offset,
            service=current_service(),
        ):
            await self._on_message(message)

    async def _on_message(self, message: Message) -> None:
        try:
            envelope = Envelope.decode(message.value)
        except Exception as exc:
            await self._dead_letter(message, exc, attempts=1, reason="undecodable")
            return
        if envelope is None or type(envelope.event) not in self.routes:
            self.stats["skipped"] += 1  # a type this group does not handle (or does not know)
            return
        failures = 0
        first_failure = last_warning = 0.0
        while True:
            try:
                await self.dispatch(envelope)
            except Stopped:
                raise
            except Exception as exc:
                failures += 1
                now = time.monotonic()
                transient = is_transient(exc)
                if failures == 1:
                    first_failure = now
                if self._gives_up(failures, transient, now - first_failure):
                    reason = "transient" if transient else "permanent"
                    await self._dead_letter(message, exc, attempts=failures, reason=reason)
                    return
                if transient and now - last_warning >= 60:
                    last_warning = now
                    log.warning(
                        "event handling failed; retrying with backoff",
                        exc_info=exc if failures == 1 else None,
                        extra=self._where(message) | {"failures": failures, "error": repr(exc)},
                    )
                self.stats["retries"] += 1
                await self._pause(self.policy.delay(failures), message)
                continue
            self.stats["handled"] += 1
            if failures:
                log.info(
                    "event handled after retries",
                    extra=self._where(message) | {"failures": failures},
                )
            return

    def _gives_up(self, failures: int, transient: bool, failing_for: float) -> bool:
        if not transient:
            return failures >= self.policy.attempts
        deadline = self.policy.transient_deadline_seconds
        return deadline > 0 and failing_for >= deadline

    def _where(self, message: Message) -> dict[str, Any]:
        return {
            "group": self.group,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
        }

    async def _pause(self, seconds: float, message: Message) -> None:
        """Sleep before a retry; leave the record uncommitted if the consumer stops first or
        its partition went to another member meanwhile (which takes the record from there)."""
        if not self._stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), seconds)
        if self._stopped.is_set():
            raise Stopped
        if not self.inner.owns(message):
            self.stats["handed_over"] += 1
            log.info("partition moved to another member mid-retry", extra=self._where(message))
            raise Stopped

    async def _dead_letter(
        self, message: Message, exc: BaseException, *, attempts: int, reason: str
    ) -> None:
        """Put the record on the dead-letter topic; only then may its offset be committed."""
        letter = DeadLetter(
            group=self.group,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            reason=reason,
            attempts=attempts,
        )
        # With the record's own headers: the dead letter names the trace it failed in.
        record = OutgoingMessage(
            DEADLETTER_TOPIC, key=message.key, value=letter.encode(), headers=message.headers
        )
        failures = 0
        while True:
            try:
                await self._bus.publish([record])
                break
            except Exception as publish_error:
                failures += 1
                if failures == 1:
                    log.warning(
                        "could not publish a dead letter; retrying",
                        extra=self._where(message) | {"error": repr(publish_error)},
                    )
                await self._pause(self.policy.delay(failures), message)
        self.stats["dead_lettered"] += 1
        count(DEAD_LETTERS, group=self.group, reason=reason)
        log.error(
            "event dead-lettered; its partition moves on",
            exc_info=exc if reason != "undecodable" else None,
            extra=self._where(message)
            | {
                "reason": reason,
                "attempts": attempts,
                "error": letter.error,
                "dead_lettered": self.stats["dead_lettered"],
            },
        )
