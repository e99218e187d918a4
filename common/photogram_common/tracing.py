"""OpenTelemetry traces: one request's spans across the services, the outbox and the bus.

Tracing is on only when an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, with the other standard `OTEL_*` variables: headers,
protocol details, sampler, resource attributes, batch sizes) or a test installs a provider
(`use_provider`). Otherwise `ENABLED` stays false and every caller checks it first, so an
untraced process skips even the reading and writing of trace headers (docs/operations.md,
"Traces"; docs/decisions.md, "Traces").

The context travels as W3C trace context: the `traceparent` (and `tracestate`) header of
each call between services; the `trace_context` column of an outbox row, written in the
transaction of the change; the `traceparent` header of the bus record the relay sends. So
an upload is one trace: the gateway's request, its calls to media-service and post-service,
the relay's publish of the post's event and each consumer's handling of it, down to the
fan-out's timeline writes.

Each span names the service whose code made it (`photogram.service`): the embedded mode
runs all of them in one process, under one resource.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

# Read by every instrumented path before any other tracing work (module attribute: read it
# as `tracing.ENABLED`, never imported by value).
ENABLED = False

SERVICE_ATTRIBUTE = "photogram.service"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROPAGATOR = TraceContextTextMapPropagator()
_NO_TRACER: Tracer = trace.NoOpTracer()
_tracer: Tracer = _NO_TRACER
_configured: Any = None  # the provider configure_tracing made, kept for use_provider(None)

Headers = Sequence[tuple[str, bytes]]


def wanted() -> bool:
    """Whether the environment asks for traces: an OTLP endpoint, and the SDK not disabled."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(os.environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def configure_tracing(service: str) -> bool:
    """Export this process's spans over OTLP/HTTP when the environment asks for it (see
    `wanted`); return whether it does. `OTEL_SERVICE_NAME` names the process, else
    `service` does."""
    global _configured
    if not wanted():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    detected = Resource.create()
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = detected if named else detected.merge(Resource({SERVICE_NAME: service}))
    # The sampler is the SDK's (OTEL_TRACES_SAMPLER; parent-based, always on by default).
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = provider
    use_provider(provider)
    log.info("tracing on", extra={"otel_service": resource.attributes.get(SERVICE_NAME)})
    return True


def use_provider(provider: trace.TracerProvider | None) -> None:
    """Trace with `provider` (a test's in-memory one); None: back to what the environment
    configured, or to no tracing at all."""
    global ENABLED, _tracer
    chosen = provider if provider is not None else _configured
    if chosen is None:
        ENABLED, _tracer = False, _NO_TRACER
        return
    ENABLED, _tracer = True, chosen.get_tracer("photogram")


def tracer() -> Tracer:
    return _tracer


# HTTP: a server span per request, a client span per call to a peer.


def start_server_span(
    headers: Mapping[bytes, bytes], method: str, path: str, service: str
) -> tuple[Span, object]:
    """Start the span of one request, the child of the caller's `traceparent` if it sent
    one, and make it current; `finish_server_span` ends it."""
    carrier = {}
    parent = headers.get(b"traceparent")
    if parent:
        carrier[TRACEPARENT] = parent.decode("latin-1")
        state = headers.get(b"tracestate")
        if state:
            carrier[TRACESTATE] = state.decode("latin-1")
    span = _tracer.start_span(
        method,
        context=_PROPAGATOR.extract(carrier) if carrier else None,
        kind=SpanKind.SERVER,
        attributes={
            SERVICE_ATTRIBUTE: service,
            "http.request.method": method,
            "url.path": path,
        },
    )
    return span, context.attach(trace.set_span_in_context(span))


def finish_server_span(
    span: Span, token: object, *, method: str, route: str, status: int, failed: bool
) -> None:
    """Name the span by its route template (known once routed), record the status, end it."""
    context.detach(token)  # type: ignore[arg-type]  # the token attach returned
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if failed or status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


@contextlib.contextmanager
def client_span(peer: str, method: str, path: str, service: str) -> Iterator[Span]:
    """The span of one call to a peer, current while it runs (`inject` carries it)."""
    with _tracer.start_as_current_span(
        f"{method} {peer}",
        kind=SpanKind.CLIENT,
        attributes={
            SERVICE_ATTRIBUTE: service,
            "peer.service": peer,
            "http.request.method": method,
            "url.path": path,
        },
    ) as span:
        yield span


def inject(headers: dict[str, str]) -> None:
    """Add the current context's `traceparent` (and `tracestate`) to outgoing headers."""
    _PROPAGATOR.inject(headers)


# The outbox and the bus.


def current_traceparent() -> str | None:
    """The current span's context as a `traceparent` value (None outside any span)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def start_producer_span(
    traceparent: str, *, topic: str, key: str, row_id: int, service: str
) -> tuple[Span, Headers]:
    """Start the relay's span of one outbox row, the child of the context the row was
    written in; return it with the bus headers that make the consumers' spans its children."""
    span = _tracer.start_span(
        "outbox publish",
        context=_PROPAGATOR.extract({TRACEPARENT: traceparent}),
        kind=SpanKind.PRODUCER,
        attributes={
            SERVICE_ATTRIBUTE: service,
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.message.key": key,
            "photogram.outbox.id": row_id,
        },
    )
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return span, [(name, value.encode("latin-1")) for name, value in carrier.items()]


def end_span(span: Span, error: BaseException | None = None) -> None:
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


@contextlib.contextmanager
def consumer_span(
    headers: Headers,
    *,
    topic: str,
    group: str,
    partition: int,
    offset: int,
    service: str,
) -> Iterator[Span]:
    """The span of one record's handling, the child of the producer's (its `traceparent`
    header), current while the handlers run."""
    carrier = {
        name: value.decode("latin-1")
        for name, value in headers
        if name in (TRACEPARENT, TRACESTATE)
    }
    with _tracer.start_as_current_span(
        f"consume {topic}",
        context=_PROPAGATOR.extract(carrier) if carrier else None,
        kind=SpanKind.CONSUMER,
        attributes={
            SERVICE_ATTRIBUTE: service,
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": group,
            "messaging.destination.partition.id": str(partition),
            "messaging.kafka.offset": offset,
        },
    ) as span:
        yield span


@contextlib.contextmanager
def span(name: str, service: str, **attributes: str | int | float | bool) -> Iterator[Span | None]:
    """An internal span around a block of work; nothing at all while tracing is off."""
    if not ENABLED:
        yield None
        return
    with _tracer.start_as_current_span(
        name, attributes={SERVICE_ATTRIBUTE: service, **attributes}
    ) as made:
        yield made


# Logs.


def current_ids() -> tuple[str, str] | None:
    """The current recording span's trace and span IDs (hex), for log lines."""
    current = trace.get_current_span()
    if not current.is_recording():
        return None
    ids = current.get_span_context()
    return format(ids.trace_id, "032x"), format(ids.span_id, "016x")
