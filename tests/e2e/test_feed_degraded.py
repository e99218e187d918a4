"""The feed while Redis is unreachable: read from the databases, the same pages.

In the embedded mode the in-process Redis is switched off (its clients then fail to
connect, as they would against a stopped server); with real backends feed-service's
Redis clients are pointed at a port nothing listens on.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from backends import REAL, redis_at
from helpers import Api, eventually, feed_ids, post_photo

THRESHOLDS = {"default": {}, "three": {"celebrity_threshold": 3}}


@pytest.fixture(params=list(THRESHOLDS))
def system_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return THRESHOLDS[request.param]


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def redis_down(system: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    feed = system.services["feed-service"].state.feed
    if not REAL:
        server = feed.timelines.redis.connection_pool.connection_kwargs["server"]
        server.connected = False
        try:
            yield
        finally:
            server.connected = True
        return
    url = f"redis://127.0.0.1:{dead_port()}/0"
    text, raw = redis_at(url), redis_at(url, decode_responses=False)
    with monkeypatch.context() as patch:
        for owner, attribute, client in (
            (feed.timelines, "redis", text),
            (feed.follows, "redis", text),
            (feed.bodies, "_redis", raw),
        ):
            patch.setattr(owner, attribute, client)
        patch.setattr(feed.reads, "_script", raw.register_script("return 0"))
        try:
            yield
        finally:
            await text.aclose()
            await raw.aclose()


async def follow(api: Api, follower: dict[str, Any], followee: dict[str, Any]) -> None:
    response = await api.client.post(
        f"/api/users/{followee['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 200


async def test_the_feed_is_served_from_the_databases_while_redis_is_down(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    star, ana, bob, cat = [await api.signup(n) for n in ("star", "ana", "bob", "cat")]
    for fan in (ana, bob, cat):
        await follow(api, fan, star)  # three followers: pulled at threshold 3
    await follow(api, ana, bob)
    authors = (star, bob, ana, star, bob)
    made = [await post_photo(api.client, a, caption=f"c{i}") for i, a in enumerate(authors)]
    gone = await post_photo(api.client, star)
    deleted = await api.client.delete(f"/api/post/{gone}", headers=star["headers"])
    assert deleted.status_code == 204
    expected = sorted(made, key=int, reverse=True)

    async def settled() -> bool:
        return await feed_ids(api.client, ana) == expected

    await eventually(settled, timeout=10)
    healthy = (await api.client.get("/api/feed", headers=ana["headers"])).json()
    async with redis_down(system, monkeypatch):
        for limit in (1, 2, 100):
            assert await feed_ids(api.client, ana, limit=limit) == expected
        degraded = (await api.client.get("/api/feed", headers=ana["headers"])).json()
        assert degraded == healthy  # the same JSON, item for item
        bad = await api.client.get("/api/feed?cursor=xyz", headers=ana["headers"])
        assert bad.status_code == 400
    assert await feed_ids(api.client, ana) == expected
