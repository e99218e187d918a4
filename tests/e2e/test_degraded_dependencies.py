"""What the loss of one dependency means (docs/operations.md, "When a dependency is lost").

- Redis: the gateway's rate limits fail open (allowed, logged, counted) and feed-service
  reads from the databases; both stay ready and say "degraded". In the embedded mode the
  in-process Redis is switched off for everyone; with real backends the gateway's limiter
  and feed-service's clients are pointed at a port nothing listens on.
- The broker: user- and post-service stay ready (the outbox holds the events) and the
  events arrive once it is back.
- A peer: the gateway stays ready; the routes that need the peer answer 503, the others
  serve.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from backends import REAL, redis_at
from gateway.ratelimit import RateLimiter
from helpers import Api, eventually, feed_ids, post_photo

LIMIT = 600


@pytest.fixture
def system_overrides() -> dict[str, Any]:
    return {"rate_limit_per_minute": LIMIT}


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def redis_down(system: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RateLimiter]:
    """Redis unreachable for the gateway and feed-service; yields the limiter in use."""
    feed = system.services["feed-service"].state.feed
    policy = system.gateway.state.policy
    if not REAL:
        server = feed.timelines.redis.connection_pool.connection_kwargs["server"]
        server.connected = False
        try:
            yield policy.limiter
        finally:
            server.connected = True
        return
    url = f"redis://127.0.0.1:{dead_port()}/0"
    text, raw = redis_at(url), redis_at(url, decode_responses=False)
    limiter = RateLimiter(redis_at(url))
    with monkeypatch.context() as patch:
        patch.setattr(policy, "limiter", limiter)
        for owner, attribute, client in (
            (feed.timelines, "redis", text),
            (feed.follows, "redis", text),
            (feed.bodies, "_redis", raw),
            (feed.reads, "redis", raw),
        ):
            patch.setattr(owner, attribute, client)
        patch.setattr(feed.reads, "_script", raw.register_script("return 0"))
        try:
            yield limiter
        finally:
            await text.aclose()
            await raw.aclose()
            await limiter._redis.aclose()


async def readiness(app: Any) -> tuple[int, dict[str, Any]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.get("/readyz")
    return response.status_code, response.json()


async def follow(api: Api, follower: dict[str, Any], followee: dict[str, Any]) -> None:
    response = await api.client.post(
        f"/api/users/{followee['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 200


async def test_without_redis_every_route_answers_and_the_gateway_and_feed_stay_ready(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    await follow(api, ana, bob)
    post = await post_photo(api.client, bob)

    async def delivered() -> bool:
        return await feed_ids(api.client, ana) == [post]

    await eventually(delivered)
    requests = 0
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        async with redis_down(system, monkeypatch) as limiter:
            before = limiter.stats["failed_open"]
            for _ in range(20):
                me = await api.client.get("/api/users/me", headers=ana["headers"])
                assert me.status_code == 200
            assert await feed_ids(api.client, ana) == [post]  # from the databases
            carl = await api.signup("carl")  # signup: the address's and the auth limit
            login = await api.client.post(
                "/api/auth/login", json={"login": "carl", "password": "correct horse battery"}
            )
            assert login.status_code == 200
            anonymous = await api.client.get("/api/users/me")  # counted by address, then 401
            assert anonymous.status_code == 401
            requests = 20 + 1 + 2 + 1 + 1
            for app in (system.gateway, system.services["feed-service"]):
                status, body = await readiness(app)
                assert status == 200
                assert body["status"] == "degraded"
                assert body["checks"]["redis"].startswith("unavailable")
            assert limiter.stats["failed_open"] - before >= requests
        assert carl["user"]["username"] == "carl"
    lines = [r for r in caplog.records if r.name == "gateway.ratelimit"]
    assert 1 <= len(lines) < requests  # the outage is logged, not each request
    status, body = await readiness(system.gateway)
    assert status == 200
    assert body["checks"]["redis"] == "ok"
    assert await feed_ids(api.client, ana) == [post]


async def test_without_the_broker_user_and_post_service_stay_ready_and_events_wait(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    first = await post_photo(api.client, bob)

    async def unreachable(*_: Any, **__: Any) -> None:
        raise ConnectionError("the broker is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(system.bus, "ping", unreachable)
        patch.setattr(system.bus, "publish", unreachable)
        for name in ("user-service", "post-service"):
            status, body = await readiness(system.services[name])
            assert status == 200, name
            assert body["status"] == "degraded", name
            assert body["checks"] == {"database": "ok", "events": "unavailable: ConnectionError"}
        status, _ = await readiness(system.gateway)
        assert status == 200
        await follow(api, ana, bob)  # committed with its event in the outbox
        second = await post_photo(api.client, bob)
        users = system.services["user-service"].state
        table = users.relay._outbox.table
        async with users.database.transaction() as session:
            waiting = (await session.execute(select(table).where(table.c.sent_at.is_(None)))).all()
        assert [row.topic for row in waiting] == ["photogram.follows.v1"]

    async def delivered() -> bool:
        me = (await api.client.get("/api/users/me", headers=bob["headers"])).json()
        return me["posts_count"] == 2 and await feed_ids(api.client, ana) == [second, first]

    await eventually(delivered, timeout=30)  # the relays sent what the outage held
    for name in ("user-service", "post-service"):
        assert (await readiness(system.services[name]))[1]["status"] == "ready"


async def test_with_a_peer_down_the_gateway_stays_ready_and_only_its_routes_answer_503(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    post = await post_photo(api.client, ana)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    posts = system.gateway.state.peers.posts
    down = httpx.AsyncClient(transport=httpx.MockTransport(refuse), base_url="http://post-service")
    with monkeypatch.context() as patch:
        patch.setattr(posts, "http", down)
        status, body = await readiness(system.gateway)
        assert status == 200
        assert body["status"] == "degraded"
        assert body["checks"]["post-service"] == "unavailable: ConnectError"
        assert body["checks"]["user-service"] == "ok"
        refused = await api.client.get(f"/api/post/{post}", headers=ana["headers"])
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"].startswith("application/problem+json")
        me = await api.client.get("/api/users/me", headers=ana["headers"])
        assert me.status_code == 200
    await down.aclose()
    assert (await api.client.get(f"/api/post/{post}", headers=ana["headers"])).status_code == 200


async def test_a_dependency_that_hangs_is_reported_without_holding_the_probe(
    system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(system.bus, "ping", hangs)
    status, body = await readiness(system.services["user-service"])
    assert status == 200
    assert body["checks"]["events"] == "unavailable: TimeoutError"
