"""The feed relayed over a real socket, as in the multi-process deployment.

The gateway's page relay talks to a network peer through aiohttp directly (not the httpx
layer); pages, cursors and problems must come through it exactly as in-process.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from helpers import Api, eventually, feed_ids, post_photo
from photogram_common.clients import ServiceClient, make_transport


@pytest.fixture
async def feed_over_network(system: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            system.services["feed-service"], lifespan="off", log_config=None, access_log=False
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        return bool(server.started)

    await eventually(started)
    peers = system.gateway.state.peers
    network = ServiceClient(
        name="feed-service",
        base_url=f"http://127.0.0.1:{port}",
        internal_secret=peers.feed._secret,
        timeout=5.0,
        transport=make_transport(None),
        network=True,
    )
    monkeypatch.setattr(peers, "feed", network)
    try:
        yield
    finally:
        await network.close()
        server.should_exit = True
        await serving


async def test_pages_and_problems_come_through_the_network_relay(
    api: Api, feed_over_network: None
) -> None:
    ana = await api.signup("ana")
    posts = [await post_photo(api.client, ana, caption=f"p{i}") for i in range(5)]

    async def all_there() -> bool:
        return await feed_ids(api.client, ana) == posts[::-1]

    await eventually(all_there)
    first = await api.client.get("/api/feed?limit=3", headers=ana["headers"])
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    page = first.json()
    assert [p["post_id"] for p in page["items"]] == posts[:1:-1]
    assert page["items"][0]["caption"] == "p4"
    rest = await api.client.get(
        f"/api/feed?limit=3&cursor={page['next_cursor']}", headers=ana["headers"]
    )
    assert [p["post_id"] for p in rest.json()["items"]] == posts[1::-1]
    assert rest.json()["next_cursor"] is None
    bad = await api.client.get("/api/feed?cursor=not-a-cursor", headers=ana["headers"])
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["title"] == "Bad cursor"
