"""One upload is one trace (photogram_common.tracing): the gateway's request, its calls to
media-service and post-service, the outbox relay's publish of the post's event and the
fan-out's handling of it down to the timeline writes, each span naming its service; the
log lines written meanwhile carry the trace's ID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tracing_helpers import recording_spans, service_of, trace_of

from helpers import Api, eventually, feed_ids, tiny_jpeg


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as exporter:
        yield exporter


def connected(trace: list[ReadableSpan]) -> bool:
    """Whether every span of the trace but its root has its parent in it (all ended)."""
    ids = {span.context.span_id for span in trace if span.context is not None}
    roots = [span for span in trace if span.parent is None]
    return len(roots) == 1 and all(
        span.parent.span_id in ids for span in trace if span.parent is not None
    )


async def test_an_upload_is_one_trace_down_to_the_timeline_writes(
    api: Api, spans: InMemorySpanExporter
) -> None:
    ana = await api.signup("trace_ana")
    bob = await api.signup("trace_bob")
    followed = await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    assert followed.status_code == 200, followed.text
    assert await feed_ids(api.client, bob) == []
    # What the sign-ups and the follow traced (their own traces) is not the upload's.
    await eventually(lambda: _fanned_out_follow(spans))
    spans.clear()

    response = await api.client.post(
        "/api/upload",
        headers=ana["headers"],
        data={"caption": "traced"},
        files=[("file", ("photo.jpg", tiny_jpeg(), "image/jpeg"))],
    )
    assert response.status_code == 201, response.text
    post_id = response.json()["post_id"]

    async def delivered() -> bool:
        return post_id in await feed_ids(api.client, bob)

    await eventually(delivered)
    [upload] = [s for s in spans.get_finished_spans() if s.name == "POST /api/upload"]
    assert upload.kind == SpanKind.SERVER
    assert service_of(upload) == "gateway"
    trace_id = trace_of(upload)

    async def whole() -> list[ReadableSpan]:
        found = [s for s in spans.get_finished_spans() if trace_of(s) == trace_id]
        names = {s.name for s in found}
        assert "fanout timeline writes" in names, names
        assert connected(found), sorted(names)
        return found

    trace = await eventually(whole)
    by_service: dict[str, set[str]] = {}
    for span in trace:
        by_service.setdefault(service_of(span), set()).add(span.name)
    assert {"gateway", "media-service", "post-service", "fanout-worker"} <= set(by_service)
    assert "POST media-service" in by_service["gateway"]
    assert "POST post-service" in by_service["gateway"]
    assert "POST /internal/uploads" in by_service["media-service"]
    assert "outbox publish" in by_service["post-service"]  # the relay runs in post-service
    [publish] = [s for s in trace if s.name == "outbox publish"]
    assert publish.kind == SpanKind.PRODUCER
    [consumed] = [
        s for s in trace if s.kind == SpanKind.CONSUMER and service_of(s) == "fanout-worker"
    ]
    assert consumed.parent is not None
    assert publish.context is not None
    assert consumed.parent.span_id == publish.context.span_id
    [writes] = [s for s in trace if s.name == "fanout timeline writes"]
    assert writes.parent is not None
    assert consumed.context is not None
    assert writes.parent.span_id == consumed.context.span_id
    assert int((writes.attributes or {})["photogram.timelines"]) >= 1  # ana's own at least
    # The feed reads after it are traces of their own: nothing else joined the upload's.
    assert all(s.name != "GET /api/feed" for s in trace)


async def _fanned_out_follow(spans: InMemorySpanExporter) -> bool:
    return any(
        s.kind == SpanKind.CONSUMER and service_of(s) == "fanout-worker"
        for s in spans.get_finished_spans()
    )
