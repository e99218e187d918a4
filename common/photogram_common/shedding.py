"""Load shedding: a fast 503 past a bound on the requests in flight, or on the event loop's lag.

Past the knee a queue only adds latency to every request it holds. Refusing the excess at
once keeps the served requests at the knee's latency and tells clients when to come back.
Health probes are never shed: an overloaded process is alive and still ready (nor is the
metrics scrape: an overload is when it is wanted).

The in-flight bound sees only the requests the process has begun. When the cores are
saturated the queue forms before that, in the event loop (requests parsed but not yet
run) and the socket buffers, and every request waits in it whatever the bound. How late
the loop runs a timer measures that wait, so past `max_lag` a request is refused too:
the loop then spends on the refusals a fraction of what serving them would cost, and
the queue drains (docs/benchmarks.md (d), past the knee).

A bound may be given a short wait: a request past it waits, first come first served, up to
`wait` seconds for a slot before it is refused. That lets a tight bound ride out the
bursts of a steady load (a pause of the loop lets a dozen requests arrive at once) while
past the knee the wait, not the queue, caps what a served request waits. A hot path may
have a bound of its own (`paths`), so that slow requests of other routes (uploads) never
take its slots, nor it theirs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from photogram_common.metrics import SHED_REQUESTS

# Never shed: the health probes, and the metrics scrape (most wanted when overloaded).
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
_BODY = (
    b'{"type":"about:blank","title":"Service unavailable","status":503,'
    b'"detail":"The service is at capacity; try again shortly."}'
)


class LoopLag:
    """How late the running event loop runs a timer due every `interval` seconds.

    `seconds()` is the lesser lateness of the last two ticks, where a tick now overdue
    counts as late by as much already (a loop too busy to run it is at least that late):
    a single pause, such as a long garbage collection, is not a queue. Started on the
    first call, on whichever loop runs it; restarted when that loop changes (tests).
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._late = (0.0, 0.0)  # the last two ticks'

    def seconds(self) -> float:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._late = loop, (0.0, 0.0)
            self._schedule(loop.time())
            return 0.0
        overdue = loop.time() - self._due
        if overdue > self._late[1]:
            return min(self._late[1], overdue)
        return min(self._late)

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.interval
        self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self._late = (self._late[1], now - self._due)
        self._schedule(now)


class Admission:
    """At most `limit` requests in flight; one past it waits up to `wait` seconds for a
    slot (at most `limit` waiting), then is refused.

    The wait is controlled as CoDel does a queue's delay: when the line of waiting
    requests has not once been empty for `overload_after` seconds (a standing line: the
    load is past what the slots serve, not a burst), a newcomer waits `overload_wait` at
    most instead, so that past the knee a served request waits little and the excess is
    refused at once; the first moment the line is empty again, the full wait is back.
    `overload_after` 0 keeps the full wait always.

    By default the longest waiting request is served first and a newcomer to a full line
    is refused. `newest_first` (adaptive LIFO) gives a freed slot to the request that came
    last and refuses the oldest waiter to make room; measured past the knee it served no
    lower a p99 and its refusals waited longer (docs/benchmarks.md (d)), so it is off.
    """

    def __init__(
        self,
        limit: int,
        *,
        wait: float = 0.0,
        newest_first: bool = False,
        overload_wait: float = 0.0,
        overload_after: float = 0.0,
    ) -> None:
        self.limit = limit
        self.wait = wait
        self.newest_first = newest_first
        self.overload_wait = min(overload_wait, wait)
        self.overload_after = overload_after
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._empty_at = 0.0  # when the line was last empty (a line forms only from empty)

    def current_wait(self, now: float) -> float:
        """How long a request joining the line now may wait."""
        standing = self._waiters and now - self._empty_at >= self.overload_after
        return self.overload_wait if self.overload_after and standing else self.wait

    async def enter(self) -> bool:
        """Take a slot; False when none came free in time (the request is to be refused)."""
        if self.in_flight < self.limit:
            self.in_flight += 1
            return True
        if not self.wait:
            return False
        if len(self._waiters) >= self.limit:
            if not self.newest_first:
                return False
            self._refuse(self._waiters.popleft())
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiters:
            self._empty_at = now
        wait = self.current_wait(now)
        if not wait:
            return False
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(wait, self._expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled (its client left) while waiting: out of the line; or just as it was
            # handed a slot: the slot passes on.
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.leave()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    def leave(self) -> None:
        """Give the slot back, to the next waiting request if any."""
        while self._waiters:
            waiter = self._waiters.pop() if self.newest_first else self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)  # the slot passes on: in_flight stays
                return
        self.in_flight -= 1

    def _expire(self, waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            self._waiters.remove(waiter)
            self._refuse(waiter)

    @staticmethod
    def _refuse(waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            waiter.set_result(False)


class InFlightLimitMiddleware:
    """Answer 503 with Retry-After when `limit` requests are already in flight (0: no
    bound) and none finishes within `wait_seconds` (`overload_wait_seconds` once the line
    has stood for `overload_after_seconds`: `Admission`), or when the event loop is more
    than `max_lag_seconds` late (0: no bound). A path in `paths` has a bound of its own
    (exact paths: the hot routes), with the same waits and order (`newest_first`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int = 0,
        max_lag_seconds: float = 0.0,
        wait_seconds: float = 0.0,
        newest_first: bool = False,
        overload_wait_seconds: float = 0.0,
        overload_after_seconds: float = 0.0,
        paths: Mapping[str, int] | None = None,
        retry_after_seconds: int = 1,
        service: str = "photogram",
    ) -> None:
        self.app = app

        def admission(bound: int) -> Admission:
            return Admission(
                bound,
                wait=wait_seconds,
                newest_first=newest_first,
                overload_wait=overload_wait_seconds,
                overload_after=overload_after_seconds,
            )

        self.admission = admission(limit) if limit else None
        self.by_path = {
            path: admission(bound)
            for path, bound in (paths or {}).items()
            if bound  # 0: no bound of its own, the general one applies
        }
        self.max_lag = max_lag_seconds
        self.lag = LoopLag()
        self.shed = 0
        self._retry_after = str(retry_after_seconds).encode()
        self._shed_in_flight = SHED_REQUESTS.labels(service, "in_flight")
        self._shed_loop_lag = SHED_REQUESTS.labels(service, "loop_lag")

    @property
    def in_flight(self) -> int:
        """Requests in flight under the general bound (a path with its own is not counted)."""
        return self.admission.in_flight if self.admission is not None else 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        if self.max_lag and self.lag.seconds() > self.max_lag:
            self._shed_loop_lag.inc()
            self.shed += 1
            await self._refuse(scope, send)
            return
        admission = self.by_path.get(scope["path"], self.admission)
        if admission is None:
            await self.app(scope, receive, send)
            return
        if not await admission.enter():
            self._shed_in_flight.inc()
            self.shed += 1
            await self._refuse(scope, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            admission.leave()

    async def _refuse(self, scope: Scope, send: Send) -> None:
        request_id = next(
            (v for k, v in scope.get("headers") or [] if k == b"x-request-id" and len(v) <= 128),
            uuid.uuid4().hex.encode(),
        )
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(_BODY)).encode()),
                    (b"retry-after", self._retry_after),
                    (b"x-request-id", request_id),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _BODY})
