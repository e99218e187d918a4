"""The fixed-window rate limiter: counts, windows, and bursts from many clients at once.

In the embedded mode the limiter runs on fakeredis; with PHOTOGRAM_TEST_BACKENDS=real the same
tests run on the real Redis, and a burst from two processes shows the limit holds across
replicas. On a Redis Cluster (PHOTOGRAM_REDIS_CLUSTER) they run through the cluster client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

import gateway.ratelimit as ratelimit
from backends import REAL, REDIS_CLUSTER, WORKER, real_redis, require
from gateway.ratelimit import RateLimiter

REPO = Path(__file__).resolve().parents[2]
# Other test runs flush database 0 of the shared test Redis between tests; a flush in the
# middle of a burst would reset the count. These tests keep to a database of their own
# (a Redis Cluster has database 0 only: there the suite's tests run one after another),
# one per pytest-xdist worker, counted down from 15 (the workers' own count up from 0).
TEST_DB = 15 - WORKER


def real_redis_url() -> str:
    if REDIS_CLUSTER:
        return require("PHOTOGRAM_REDIS_URL")
    return require("PHOTOGRAM_REDIS_URL").rsplit("/", 1)[0] + f"/{TEST_DB}"


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    if REDIS_CLUSTER:
        client = real_redis(decode_responses=True)
        await client.ping()
    elif REAL:
        import redis.asyncio as aioredis

        client = aioredis.from_url(real_redis_url(), decode_responses=True)
        await client.ping()
    else:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The limiter's clock, held still mid-window so a test never straddles two windows."""
    now = SimpleNamespace(value=(int(time.time()) // 60) * 60 + 30.0)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: now.value))
    return now


def subject() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_allows_the_limit_then_refuses_with_retry_after(redis: Any, clock: Any) -> None:
    limiter, who = RateLimiter(redis), subject()
    verdicts = [await limiter.hit(who, limit=5) for _ in range(7)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 2
    assert all(v.retry_after == 0 for v in verdicts[:5])
    assert all(1 <= v.retry_after <= 60 for v in verdicts[5:])


async def test_subjects_are_counted_apart(redis: Any, clock: Any) -> None:
    limiter, first, second = RateLimiter(redis), subject(), subject()
    for _ in range(3):
        await limiter.hit(first, limit=3)
    assert not (await limiter.hit(first, limit=3)).allowed
    assert (await limiter.hit(second, limit=3)).allowed


async def test_a_new_window_starts_afresh(redis: Any, clock: Any) -> None:
    limiter, who = RateLimiter(redis), subject()
    for _ in range(2):
        await limiter.hit(who, limit=2)
    assert not (await limiter.hit(who, limit=2)).allowed
    clock.value += 60
    assert (await limiter.hit(who, limit=2)).allowed


async def test_a_window_s_counter_expires_with_it(redis: Any, clock: Any) -> None:
    limiter, who = RateLimiter(redis, window_seconds=60), subject()
    await limiter.hit(who, limit=1)
    keys = [key async for key in redis.scan_iter(match=f"rl:{{{who}}}:*")]
    assert len(keys) == 1
    assert 0 < await redis.ttl(keys[0]) <= 60


def _burst_in_thread(
    server: fakeredis.FakeServer,
    who: str,
    *,
    limit: int,
    hits: int,
    start: threading.Barrier,
    allowed: list[int],
) -> None:
    async def burst() -> int:
        client = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
        limiter = RateLimiter(client)
        start.wait()
        verdicts = await asyncio.gather(*(limiter.hit(who, limit=limit) for _ in range(hits)))
        await client.aclose()
        return sum(v.allowed for v in verdicts)

    allowed.append(asyncio.run(burst()))


async def test_a_concurrent_burst_admits_exactly_the_limit_in_process(clock: Any) -> None:
    """Two threads, each with its own event loop and client, and concurrent tasks in each.

    fakeredis has no server another process could share, so this is the embedded mode's
    version of the two-process burst below: the script's INCR and EXPIRE run as one step.
    """
    server, who, limit, hits = fakeredis.FakeServer(), subject(), 30, 60
    start, allowed = threading.Barrier(3), []
    threads = [
        threading.Thread(
            target=_burst_in_thread,
            args=(server, who),
            kwargs={"limit": limit, "hits": hits, "start": start, "allowed": allowed},
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    client = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
    limiter = RateLimiter(client)
    await asyncio.to_thread(start.wait)
    verdicts = await asyncio.gather(*(limiter.hit(who, limit=limit) for _ in range(hits)))
    for thread in threads:
        await asyncio.to_thread(thread.join)
    await client.aclose()
    assert len(allowed) == 2
    assert sum(allowed) + sum(v.allowed for v in verdicts) == limit


_BURST = """
import asyncio, json, sys, time
from types import SimpleNamespace
import redis.asyncio as aioredis
import gateway.ratelimit as ratelimit

url, who = sys.argv[1], sys.argv[2]
limit, hits, start_at = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
cluster = sys.argv[6] == "1"
# Both processes count in the same window, whatever the wall clock does meanwhile.
ratelimit.time = SimpleNamespace(time=lambda: start_at)

async def main():
    if cluster:
        client = aioredis.RedisCluster.from_url(url, max_connections=hits)
    else:
        client = aioredis.from_url(url, max_connections=hits)
    limiter = ratelimit.RateLimiter(client)
    await client.ping()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    verdicts = await asyncio.gather(*(limiter.hit(who, limit=limit) for _ in range(hits)))
    await client.aclose()
    print(json.dumps(sum(v.allowed for v in verdicts)))

asyncio.run(main())
"""


# Two processes need a Redis server they share: this test exists only with the real
# backends (the embedded mode's stand-in lives inside one process). Not collected, not skipped.
if REAL:

    @pytest.mark.real
    def test_a_concurrent_burst_from_two_processes_admits_exactly_the_limit() -> None:
        url, who, limit, hits = real_redis_url(), subject(), 40, 100
        start_at = time.time() + 2.0
        processes = [
            subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [
                    sys.executable,
                    "-c",
                    _BURST,
                    url,
                    who,
                    str(limit),
                    str(hits),
                    str(start_at),
                    "1" if REDIS_CLUSTER else "0",
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        allowed = []
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            allowed.append(json.loads(out))
        assert sum(allowed) == limit, allowed


# ------------------------------------------------------------------ without Redis: fail open


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def unreachable() -> AsyncIterator[Any]:
    """A Redis client that cannot connect: a stopped stand-in, or a port nothing listens on."""
    if REDIS_CLUSTER:
        from photogram_common.redis import make_redis

        client = make_redis(f"redis://127.0.0.1:{_dead_port()}/0", cluster=True)
    elif REAL:
        import redis.asyncio as aioredis

        client = aioredis.from_url(f"redis://127.0.0.1:{_dead_port()}/0", decode_responses=True)
    else:
        server = fakeredis.FakeServer()
        server.connected = False
        client = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def limiter_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "gateway.ratelimit" and r.levelno >= logging.WARNING
    ]


async def test_without_redis_every_request_is_allowed_logged_once_and_counted(
    unreachable: Any, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    steady = SimpleNamespace(value=1000.0)
    limiter = RateLimiter(
        unreachable, retry_seconds=5, log_every_seconds=60, clock=lambda: steady.value
    )
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        verdicts = [await limiter.hit(subject(), limit=1) for _ in range(20)]
        assert verdicts == [ratelimit.ALLOWED] * 20
        assert limiter.stats == {"failed_open": 20, "redis_errors": 1}  # then not asked
        assert len(limiter_warnings(caplog)) == 1
        # Its readiness check does fail (a cluster client that reaches no node says so).
        with pytest.raises(RedisClusterException if REDIS_CLUSTER else RedisConnectionError):
            await limiter.ping()

        steady.value += 5  # the retry interval: Redis is asked again, still nothing logged
        assert (await limiter.hit(subject(), limit=1)).allowed
        assert limiter.stats == {"failed_open": 21, "redis_errors": 2}
        assert len(limiter_warnings(caplog)) == 1

        steady.value += 60  # the log interval: one more line, with the count let through
        assert (await limiter.hit(subject(), limit=1)).allowed
    lines = limiter_warnings(caplog)
    assert len(lines) == 2
    assert (lines[0].failed_open, lines[1].failed_open, lines[1].since_last_log) == (1, 22, 21)


class _Switch:
    """A client whose scripts fail while `down` is set, and otherwise run on `redis`."""

    def __init__(self, redis: Any) -> None:
        self.redis, self.down = redis, False

    def register_script(self, body: str) -> Any:
        script = self.redis.register_script(body)

        async def run(**kwargs: Any) -> Any:
            if self.down:
                raise RedisConnectionError("Connection refused")
            return await script(**kwargs)

        return run


async def test_limits_count_again_once_redis_is_back(
    redis: Any, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    steady = SimpleNamespace(value=1000.0)
    switch = _Switch(redis)
    limiter, who = RateLimiter(switch, retry_seconds=5, clock=lambda: steady.value), subject()
    assert (await limiter.hit(who, limit=2)).allowed
    switch.down = True
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        assert all([(await limiter.hit(who, limit=2)).allowed for _ in range(5)])
        switch.down = False
        assert (await limiter.hit(who, limit=2)).allowed  # inside the retry interval: unchecked
        steady.value += 5
        verdicts = [await limiter.hit(who, limit=2) for _ in range(2)]
    assert [v.allowed for v in verdicts] == [True, False]  # counted again: 1 before + 2 now
    assert limiter.stats == {"failed_open": 6, "redis_errors": 1}
    messages = [r.getMessage() for r in limiter_warnings(caplog)]
    assert messages == [
        "rate limiter cannot reach Redis: requests are allowed unchecked",
        "rate limits are counted again",
    ]


async def test_a_revoked_session_is_refused_in_the_same_call_and_not_counted(
    redis: Any, clock: Any
) -> None:
    from photogram_contracts.keys import rate_subject, revoked_key

    from photogram_common.sessions import RevokedSessions

    limiter = RateLimiter(redis, window_seconds=60)
    user = int(uuid.uuid4().int % 10**12)
    live, ended = revoked_key(user, 1), revoked_key(user, 2)
    await RevokedSessions(redis, access_token_ttl_seconds=900).mark(user, 2)
    assert 900 < await redis.ttl(ended) <= 960  # outlives every access token of the session
    who = rate_subject(user)
    assert (await limiter.hit(who, limit=2, revoked_key=live)).allowed
    refused = await limiter.hit(who, limit=2, revoked_key=ended)
    assert (refused.allowed, refused.revoked) == (False, True)
    assert (await limiter.hit(who, limit=2, revoked_key=live)).allowed  # the refusal not counted
    assert not (await limiter.hit(who, limit=2, revoked_key=live)).allowed  # the third is
    # Limits off: the session is still checked, and nothing is counted.
    assert (await limiter.hit(who, limit=0, revoked_key=ended)).revoked
    other = user + 1  # its own live session: a mark shares its subject's slot on a cluster
    assert (
        await limiter.hit(rate_subject(other), limit=0, revoked_key=revoked_key(other, 1))
    ).allowed
    assert [k async for k in redis.scan_iter(match=f"rl:{{u:{user + 1}}}:*")] == []
