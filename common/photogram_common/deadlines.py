"""Deadlines: a request's time budget, carried from the gateway through every hop.

The gateway gives each request a deadline. A call to a service waits no longer than the
time left (and, over the network, no longer than the per-hop timeout either), and tells the
service how long it will wait in `x-photogram-timeout-ms`: a relative budget, so clocks
need not agree. The service takes that budget, a little shortened, as its own deadline
(`DeadlineMiddleware`): its outgoing calls get what is left of it, and when it runs out its
work is cancelled and it answers `504`, before its caller stops waiting. So no inner hop
outlives the outer one (docs/decisions.md, "Deadlines").

A call made outside any deadline (a consumer's, a background task's) carries no budget and
keeps the client's per-hop timeout only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photogram_common.problems import Problem, problem_response

DEADLINE_HEADER = "x-photogram-timeout-ms"
# A budget is shortened by this share (at most MAX_MARGIN) before it is passed on, so the
# called service gives up and answers before its caller's own timer fires.
MARGIN_SHARE = 0.1
MAX_MARGIN_SECONDS = 0.5
MAX_BUDGET_SECONDS = 3600.0

_deadline: ContextVar[float | None] = ContextVar("photogram_deadline", default=None)


def remaining() -> float | None:
    """Seconds left before the current deadline (negative once it passed); None: no deadline."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def passed_on(seconds: float) -> float:
    """The budget a hop is given when its caller waits `seconds` for it."""
    return max(0.0, seconds - min(MAX_MARGIN_SECONDS, seconds * MARGIN_SHARE))


@contextlib.contextmanager
def within(seconds: float, *, replace: bool = False) -> Iterator[None]:
    """Run the block under a deadline `seconds` from now (never later than the current one,
    unless `replace`: a clean-up that must run after its request's deadline passed)."""
    deadline = time.monotonic() + seconds
    current = _deadline.get()
    if current is not None and not replace:
        deadline = min(deadline, current)
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def none() -> Iterator[None]:
    """Run the block under no deadline: background work a request begins and outlives it
    (a task copies the deadline of the request that created it)."""
    token = _deadline.set(None)
    try:
        yield
    finally:
        _deadline.reset(token)


def budget_header(seconds: float) -> tuple[str, str]:
    """The header telling a hop how long its caller waits for it."""
    return DEADLINE_HEADER, str(int(passed_on(seconds) * 1000))


def _budget(scope: Scope) -> float | None:
    for name, value in scope.get("headers") or ():
        if name == DEADLINE_HEADER.encode():
            if value.isdigit() and len(value) <= 10:
                return min(int(value) / 1000, MAX_BUDGET_SECONDS)
            return None
    return None


class DeadlineMiddleware:
    """Take the caller's budget (`x-photogram-timeout-ms`) as this request's deadline:
    outgoing calls get what is left of it, and when it runs out the work is cancelled and
    the answer is a `504` problem (if nothing was sent yet). No header, no deadline."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        budget = _budget(scope) if scope["type"] == "http" else None
        if budget is None:
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with within(budget):
            limit = asyncio.timeout(budget)
            try:
                async with limit:
                    await self.app(scope, receive, tracking_send)
            except TimeoutError:
                if started or not limit.expired():
                    raise
                problem = Problem(
                    504,
                    "The request ran out of time.",
                    title="Gateway timeout",
                    headers={"Retry-After": "1"},
                )
                await problem_response(problem)(scope, receive, send)
