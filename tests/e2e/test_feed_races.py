"""Races between fan-out and the follow graph: reads filter by the current follow set."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import Api, eventually, feed_ids, post_photo


@pytest.fixture(params=["default", "three"])
def system_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"celebrity_threshold": 3} if request.param == "three" else {}


async def test_a_fan_out_that_lands_after_the_unfollow_cleanup_does_not_show(
    api: Api, system: Any
) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    followed = await api.client.post(f"/api/users/{bob['id']}/follow", headers=ana["headers"])
    assert followed.status_code == 200
    post = await post_photo(api.client, bob)

    async def delivered() -> bool:
        return await feed_ids(api.client, ana) == [post]

    await eventually(delivered)
    gone = await api.client.delete(f"/api/users/{bob['id']}/follow", headers=ana["headers"])
    assert gone.status_code == 204

    async def cleaned() -> bool:
        return await feed_ids(api.client, ana) == []

    await eventually(cleaned)
    # A worker that paged bob's followers before the unfollow pushes the post now.
    timelines = system.services["fanout-worker"].state.handlers.timelines
    assert await timelines.push([int(ana["id"])], int(post)) == 1
    assert await feed_ids(api.client, ana) == []
    assert await feed_ids(api.client, bob) == [post]
