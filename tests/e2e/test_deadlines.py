"""Deadlines through the hops of an upload: each service gets what is left of the gateway's
deadline, and a hop whose budget ran out is cancelled instead of committing after its
caller gave up (docs/decisions.md, "Deadlines")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import imagefactory as make
import post_service.repository as post_repository
from gateway.settings import GatewaySettings
from helpers import Api
from media_helpers import assert_problem, stored, swept, upload
from photogram_common import deadlines

# What is left of the upload's deadline when the gateway asks for the post: the media took
# the rest (however long that really took on this machine).
LEFT = 3.0


async def test_a_hop_out_of_time_is_cancelled_and_never_commits(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    before = await stored(system)
    posts_client = system.gateway.state.peers.posts
    real_request = posts_client.request

    async def late(method: str, path: str, **kwargs: Any) -> Any:
        if path != "/posts":
            return await real_request(method, path, **kwargs)
        with deadlines.within(LEFT):
            return await real_request(method, path, **kwargs)

    seen: dict[str, Any] = {}
    resume = asyncio.Event()
    real_insert = post_repository.insert_post

    async def stuck_insert(*args: Any, **kwargs: Any) -> None:
        # post-service, inside the post's transaction: its budget came from the gateway.
        seen["left"] = deadlines.remaining()
        try:
            await resume.wait()
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        await real_insert(*args, **kwargs)

    monkeypatch.setattr(posts_client, "request", late)
    monkeypatch.setattr(post_repository, "insert_post", stuck_insert)
    sent = upload(api, ana["headers"], [("a.jpg", make.jpeg(64, 48), "image/jpeg")])
    response = await asyncio.wait_for(sent, 120)
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    # The hop knew its budget (less than what the gateway had left), and it was cancelled
    # before the gateway answered: nothing of it can commit later.
    assert seen["left"] is not None
    assert 0 < seen["left"] < LEFT
    assert seen.get("cancelled") is True
    resume.set()
    await asyncio.sleep(0)
    # No post, so the sweeper deletes the upload's media.
    assert await swept(system) == before
    mine = await api.client.get(f"/api/users/{ana['id']}/posts", headers=ana["headers"])
    assert mine.json()["items"] == []


async def test_every_request_has_a_deadline_and_a_client_cannot_set_it(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    users_app = system.services["user-service"]
    budgets: list[int] = []

    async def observe(scope: Any, receive: Any, send: Any) -> None:
        sent = dict(scope["headers"]).get(deadlines.DEADLINE_HEADER.encode())
        budgets.append(int(sent) if sent is not None else -1)
        await inner(scope, receive, send)

    inner = users_app.middleware_stack
    monkeypatch.setattr(users_app, "middleware_stack", observe)
    # The client's own budget header is not passed on, nor believed.
    headers = {**ana["headers"], deadlines.DEADLINE_HEADER: "999999999"}
    assert (await api.client.get("/api/users/me", headers=headers)).status_code == 200
    limit = GatewaySettings().request_deadline_seconds * 1000
    assert budgets
    assert all(0 < budget < limit for budget in budgets), budgets
