"""Recording the spans a test makes: the SDK's in-memory exporter, installed for the test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from photogram_common import tracing


@contextmanager
def recording_spans() -> Iterator[InMemorySpanExporter]:
    """Trace with an in-memory exporter inside the block; no tracing again after it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "photogram"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_provider(None)
        provider.shutdown()


def service_of(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get(tracing.SERVICE_ATTRIBUTE, ""))


def trace_of(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id
