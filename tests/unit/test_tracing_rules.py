"""Tracing's rules at unit speed (photogram_common.tracing): with tracing off nothing is
sent or stored (no `traceparent` on a peer call, a NULL `trace_context` in the outbox row,
no bus header, no trace ID in a log line); with it on, each carries the current span's
context, and a consumer's span continues the publisher's trace."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry import trace
from photogram_contracts.events import Envelope, FollowCreated
from sqlalchemy import MetaData, select
from tracing_helpers import recording_spans, service_of, trace_of

from photogram_common import tracing
from photogram_common.bus import Message, OutgoingMessage
from photogram_common.bus.consumer import EventConsumer
from photogram_common.bus.inprocess import InProcessEventBus
from photogram_common.clients import ServiceClient
from photogram_common.db import Database, sqlite_url
from photogram_common.logs import JsonFormatter, TextFormatter
from photogram_common.outbox import Outbox, OutboxRelay, outbox_table


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[OutgoingMessage] = []

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.published.extend(messages)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[Database, Outbox]]:
    database = Database(sqlite_url(tmp_path / "outbox.db"))
    metadata = MetaData()
    outbox = Outbox(outbox_table(metadata))
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database, outbox
    await database.engine.dispose()


def client_seeing(seen: list[httpx.Request]) -> ServiceClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    return ServiceClient(
        name="post-service",
        base_url="http://post-service",
        internal_secret="s" * 32,
        timeout=1.0,
        transport=httpx.MockTransport(answer),
    )


async def write_one(database: Database, outbox: Outbox) -> None:
    async with database.transaction() as session:
        await outbox.add(
            session, FollowCreated(follower_id=1, followee_id=2, followee_followers_count=1)
        )


async def stored_contexts(database: Database, outbox: Outbox) -> list[str | None]:
    async with database.transaction() as session:
        rows = await session.execute(select(outbox.table.c.trace_context))
        return [row[0] for row in rows.all()]


def ids_in(traceparent: str | None) -> tuple[int, int]:
    """The trace and parent span IDs of a W3C `traceparent` value."""
    assert traceparent is not None
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16)


def log_line(formatter: logging.Formatter) -> str:
    record = logging.LogRecord("photogram.test", logging.INFO, "", 0, "hello", None, None)
    return formatter.format(record)


async def test_with_tracing_off_nothing_carries_a_trace(store: tuple[Database, Outbox]) -> None:
    assert not tracing.ENABLED
    seen: list[httpx.Request] = []
    client = client_seeing(seen)
    await client.call("GET", "/internal/anything")
    await client.close()
    assert "traceparent" not in seen[0].headers
    database, outbox = store
    await write_one(database, outbox)
    assert await stored_contexts(database, outbox) == [None]
    bus = RecordingBus()
    relay = OutboxRelay(database=database, outbox=outbox, bus=bus)  # type: ignore[arg-type]
    assert await relay.publish_pending() == 1
    assert bus.published[0].headers == ()
    assert "trace_id" not in orjson.loads(log_line(JsonFormatter("test")))


async def test_with_tracing_on_calls_rows_records_and_lines_carry_the_trace(
    store: tuple[Database, Outbox],
) -> None:
    database, outbox = store
    seen: list[httpx.Request] = []
    client = client_seeing(seen)
    with recording_spans() as exporter:
        with tracing.tracer().start_as_current_span("request") as request_span:
            await client.call("GET", "/internal/anything")
            await write_one(database, outbox)
            line = orjson.loads(log_line(JsonFormatter("test")))
            text = log_line(TextFormatter("test"))
        bus = RecordingBus()
        relay = OutboxRelay(database=database, outbox=outbox, bus=bus)  # type: ignore[arg-type]
        assert await relay.publish_pending() == 1
    await client.close()
    trace_id = request_span.get_span_context().trace_id
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"request", "GET post-service", "outbox publish"}
    assert {trace_of(span) for span in spans.values()} == {trace_id}
    peer_call = spans["GET post-service"]
    assert peer_call.kind == trace.SpanKind.CLIENT
    assert peer_call.context is not None
    # The peer is told the client span's context; the row keeps the request's.
    assert ids_in(seen[0].headers["traceparent"]) == (trace_id, peer_call.context.span_id)
    [stored] = await stored_contexts(database, outbox)
    assert ids_in(stored) == (trace_id, request_span.get_span_context().span_id)
    publish = spans["outbox publish"]
    assert publish.parent is not None
    assert publish.context is not None
    assert publish.parent.span_id == request_span.get_span_context().span_id
    [(name, value)] = bus.published[0].headers
    assert (name, ids_in(value.decode())) == ("traceparent", (trace_id, publish.context.span_id))
    assert line["trace_id"] == f"{trace_id:032x}"
    assert f"trace_id={trace_id:032x}" in text
    assert not tracing.ENABLED  # restored after the block


async def test_a_stored_context_travels_on_while_tracing_is_off(
    store: tuple[Database, Outbox],
) -> None:
    database, outbox = store
    with recording_spans(), tracing.tracer().start_as_current_span("request"):
        await write_one(database, outbox)
    [stored] = await stored_contexts(database, outbox)
    bus = RecordingBus()
    relay = OutboxRelay(database=database, outbox=outbox, bus=bus)  # type: ignore[arg-type]
    assert await relay.publish_pending() == 1
    assert bus.published[0].headers == (("traceparent", str(stored).encode()),)


async def test_a_consumer_span_continues_the_publishers_trace(tmp_path: Path) -> None:
    bus = InProcessEventBus(path=tmp_path / "bus.db")
    await bus.start()
    handled: list[Any] = []

    async def on_follow(event: FollowCreated) -> None:
        handled.append(trace.get_current_span().get_span_context())

    consumer = EventConsumer(bus, group="g", routes={FollowCreated: [on_follow]})
    event = FollowCreated(follower_id=1, followee_id=2, followee_followers_count=1)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    record = OutgoingMessage(
        event.topic,
        key=event.key(),
        value=Envelope.wrap(event).encode(),
        headers=(("traceparent", parent.encode()),),
    )
    await bus.publish([record])
    # The header is kept in the bus's file: a restarted bus hands it over as it was.
    await bus.close()
    bus = InProcessEventBus(path=tmp_path / "bus.db")
    await bus.start()
    [message] = await bus.read_topic(event.topic)
    assert message.headers == record.headers
    with recording_spans() as exporter:
        await consumer.on_message(message)
    await bus.close()
    [span] = exporter.get_finished_spans()
    assert span.name == f"consume {event.topic}"
    assert span.kind == trace.SpanKind.CONSUMER
    assert service_of(span) == "photogram"  # no service's code was running
    assert f"{trace_of(span):032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331
    assert span.context is not None
    assert handled[0].span_id == span.context.span_id


def test_message_headers_default_to_none() -> None:
    assert Message("t", 0, 0, "k", b"v").headers == ()
    assert OutgoingMessage("t", "k", b"v").headers == ()
