"""Prometheus metrics of every process, all defined here (docs/operations.md, "Metrics").

Every metric has a `service` label: the embedded mode serves all seven services from one
process and one registry, and the label says whose work a sample counts. It is the service
whose code is running (`photogram_common.logs.service_var`: set per request and around each
service's lifespan), else the process's own (`set_process_service`, by `service_main`).

The services run one process each, never forked workers, so each process keeps a plain
registry that its `/metrics` route serves (docs/decisions.md, "Metrics").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

from photogram_common.logs import service_var

# Where a route that answers before FastAPI's router (photogram_common.fastroutes) names
# its path template in the ASGI scope; FastAPI's router sets "route" itself.
ROUTE_KEY = "photogram.route"
UNMATCHED = "unmatched"

# Request and call durations: from a Redis round trip (~0.1 ms) to a timeout (seconds).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Work that takes longer: a post's fan-out to many timelines, its delivery, an upload stage.
SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
COUNT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500)

_process_service = "photogram"


def set_process_service(name: str) -> None:
    """Name the service that work outside any request or lifespan of a service counts for."""
    global _process_service
    _process_service = name


def current_service() -> str:
    return service_var.get() or _process_service


# RED metrics of each app's routes (photogram_common.web.RequestIdMiddleware).
HTTP_REQUESTS = Counter(
    "photogram_http_requests",
    "HTTP requests served, by route template, method and status code.",
    ["service", "route", "method", "status"],
)
HTTP_ERRORS = Counter(
    "photogram_http_request_errors",
    "HTTP requests answered with a 5xx (or failed before answering).",
    ["service", "route", "method"],
)
HTTP_DURATION = Histogram(
    "photogram_http_request_duration_seconds",
    "Time from a request's arrival to its last response byte.",
    ["service", "route", "method"],
    buckets=LATENCY_BUCKETS,
)

# Calls to other services (photogram_common.clients.ServiceClient).
PEER_REQUESTS = Counter(
    "photogram_peer_requests",
    "Calls to a peer service, by outcome: its status class, or unreachable.",
    ["service", "peer", "outcome"],
)
PEER_DURATION = Histogram(
    "photogram_peer_request_duration_seconds",
    "Time of a call to a peer service, unreachable ones included.",
    ["service", "peer"],
    buckets=LATENCY_BUCKETS,
)

# The stores.
REDIS_DURATION = Histogram(
    "photogram_redis_call_duration_seconds",
    "Time of a Redis call (a script, a pipeline or a command), by operation.",
    ["service", "op"],
    buckets=LATENCY_BUCKETS,
)
DB_DURATION = Histogram(
    "photogram_db_query_duration_seconds",
    "Time of a SQL statement on the service's database, by its verb.",
    ["service", "verb"],
    buckets=LATENCY_BUCKETS,
)

# The outbox relay (photogram_common.outbox).
OUTBOX_UNSENT = Gauge(
    "photogram_outbox_unsent_rows",
    "Outbox rows not yet published, as the relay last counted them.",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "photogram_outbox_oldest_unsent_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none), as the relay last saw it.",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "photogram_outbox_published",
    "Outbox rows the relay published to the bus.",
    ["service"],
)

# The consumer path (photogram_common.bus).
CONSUMER_LAG = Gauge(
    "photogram_consumer_lag",
    "Records of a partition not yet handled by the group (its end offset minus its position).",
    ["service", "group", "topic", "partition"],
)
DEAD_LETTERS = Counter(
    "photogram_dead_letters",
    "Records a consumer group gave up on and put on the dead-letter topic.",
    ["service", "group", "reason"],
)

# The fan-out (fanout-worker).
FANOUT_INSERTS = Counter(
    "photogram_fanout_inserts",
    "Home timelines a new post was written into.",
    ["service"],
)
FANOUT_DURATION = Histogram(
    "photogram_fanout_duration_seconds",
    "Time to fan one new post out to its author's followers.",
    ["service"],
    buckets=SLOW_BUCKETS,
)
DELIVERY_LATENCY = Histogram(
    "photogram_delivery_latency_seconds",
    "Time from a post's creation to its fan-out's timeline writes.",
    ["service"],
    buckets=SLOW_BUCKETS,
)

# The feed (feed-service).
TIMELINE_REBUILDS = Counter(
    "photogram_timeline_rebuilds",
    "Home timelines rebuilt from the source of truth.",
    ["service"],
)
TIMELINE_REBUILD_DURATION = Histogram(
    "photogram_timeline_rebuild_duration_seconds",
    "Time to rebuild one home timeline.",
    ["service"],
    buckets=SLOW_BUCKETS,
)
PULLED_PAGES = Counter(
    "photogram_feed_pulled_pages_total",
    "Feed pages served by the pull query through the owners because every rebuild slot"
    " was taken (after a lost Redis).",
    ["service"],
)
PULLED_MERGES = Histogram(
    "photogram_feed_pulled_authors_merged",
    "Pulled authors whose recent posts a feed read merged into the page.",
    ["service"],
    buckets=COUNT_BUCKETS,
)

# Uploads (media-service).
UPLOAD_STAGE_DURATION = Histogram(
    "photogram_upload_stage_duration_seconds",
    "Time of each stage of an upload: parse, process, store, record.",
    ["service", "stage"],
    buckets=SLOW_BUCKETS,
)

# The edge (gateway) and load shedding (every app).
RATE_LIMIT_REJECTIONS = Counter(
    "photogram_rate_limit_rejections",
    "Requests refused with a 429 by the rate limit.",
    ["service"],
)
SHED_REQUESTS = Counter(
    "photogram_shed_requests",
    "Requests refused with a fast 503 by load shedding, by the bound that refused them.",
    ["service", "reason"],
)


@contextlib.contextmanager
def timed(histogram: Histogram, **labels: str) -> Iterator[None]:
    """Observe the block's duration in `histogram`, labelled with the current service."""
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(service=current_service(), **labels).observe(time.perf_counter() - started)


def observe(histogram: Histogram, value: float, **labels: str) -> None:
    histogram.labels(service=current_service(), **labels).observe(value)


def count(counter: Counter, amount: float = 1, **labels: str) -> None:
    counter.labels(service=current_service(), **labels).inc(amount)


def route_of(scope: Any) -> str:
    """The path template a request was routed to, never its raw path (IDs in it would make a
    series per ID)."""
    route = scope.get("route")  # set by FastAPI's routes (APIRoute)
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    fast = scope.get(ROUTE_KEY)
    if fast:
        return str(fast)
    if scope.get("endpoint") is not None:
        # A mounted app (the web client's files): its mount's prefix, the part of the root
        # path the mount added.
        prefix = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]
        if prefix:
            return prefix + "/{path}"
    return UNMATCHED


class RouteMetrics:
    """The RED metrics of one app's requests, the labelled series kept at hand: a request
    costs a dictionary look-up, a counter and a histogram (docs/operations.md)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._series: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def record(self, scope: Any, status: int, seconds: float, failed: bool = False) -> None:
        key = (route_of(scope), scope.get("method") or "", status)
        series = self._series.get(key)
        if series is None:
            route, method, _ = key
            series = self._series[key] = (
                HTTP_REQUESTS.labels(self.service, route, method, str(status)),
                HTTP_DURATION.labels(self.service, route, method),
                HTTP_ERRORS.labels(self.service, route, method),
            )
        requests, duration, errors = series
        requests.inc()
        duration.observe(seconds)
        if failed or status >= 500:
            errors.inc()


async def metrics_endpoint(_: Request) -> Response:
    """The process's metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def instrument_engine(sync_engine: Any) -> None:
    """Time each SQL statement of an engine (SQLAlchemy's cursor events)."""
    from sqlalchemy import event

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("photogram.started", []).append(time.perf_counter())

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        stack = conn.info.get("photogram.started")
        if stack:
            observe(DB_DURATION, time.perf_counter() - stack.pop(), verb=_verb(statement))

    @event.listens_for(sync_engine, "handle_error")
    def _failed(context: Any) -> None:
        # A statement that raised has no after_cursor_execute: drop its start.
        conn = context.connection
        stack = conn.info.get("photogram.started") if conn is not None else None
        if stack:
            stack.pop()


_VERBS = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "PRAGMA"}
)


def _verb(statement: str) -> str:
    head = statement.lstrip()[:12].split(None, 1)
    verb = head[0].upper() if head else ""
    return verb if verb in _VERBS else "OTHER"
