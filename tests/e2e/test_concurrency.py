"""Follows and unfollows racing each other end with exact counts and an exact followers list.

SQLite takes the write lock at BEGIN (BEGIN IMMEDIATE), so its writers queue; PostgreSQL
inserts with ON CONFLICT DO NOTHING and moves the counts in the database, so two requests
for the same edge cannot both count it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import Api

FANS = 40
# Per fan, steps run one after another; the requests within a step run at once.
PLANS: list[list[tuple[str, int]]] = [
    [("follow", 1)],
    [("follow", 3)],
    [("follow", 2), ("unfollow", 2)],
    [("unfollow", 2)],
    [("follow", 2), ("unfollow", 3), ("follow", 2)],
]


async def act(api: Api, fan: dict[str, Any], star_id: str, plan: list[tuple[str, int]]) -> None:
    for action, times in plan:
        method = "POST" if action == "follow" else "DELETE"
        responses = await asyncio.gather(
            *(
                api.client.request(method, f"/api/users/{star_id}/follow", headers=fan["headers"])
                for _ in range(times)
            )
        )
        expected = 200 if action == "follow" else 204
        assert [r.status_code for r in responses] == [expected] * times, responses[0].text


async def followers_of(api: Api, star: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (
            await api.client.get(
                f"/api/users/{star['id']}/followers", params=params, headers=star["headers"]
            )
        ).json()
        ids += [user["user_id"] for user in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_parallel_follows_and_unfollows_end_exact(api: Api) -> None:
    star = await api.signup("star")
    fans = await asyncio.gather(*(api.signup(f"fan{i:02d}") for i in range(FANS)))
    plans = [PLANS[i % len(PLANS)] for i in range(FANS)]

    planned = list(zip(fans, plans, strict=True))
    await asyncio.gather(*(act(api, fan, star["id"], plan) for fan, plan in planned))

    following = {fan["id"] for fan, plan in planned if plan[-1][0] == "follow"}
    profile = (await api.client.get(f"/api/users/{star['id']}", headers=star["headers"])).json()
    assert profile["followers_count"] == len(following) == 24
    assert profile["following_count"] == 0
    for fan in fans:
        mine = (await api.client.get(f"/api/users/{fan['id']}", headers=star["headers"])).json()
        assert mine["following_count"] == (1 if fan["id"] in following else 0), fan["user"]
        assert mine["followers_count"] == 0
    listed = await followers_of(api, star)
    assert len(listed) == len(set(listed))
    assert set(listed) == following


async def test_parallel_follows_of_many_accounts_by_one_user(api: Api) -> None:
    fan = await api.signup("fan")
    stars = await asyncio.gather(*(api.signup(f"star{i:02d}") for i in range(20)))
    requests = [
        api.client.post(f"/api/users/{star['id']}/follow", headers=fan["headers"])
        for star in stars
        for _ in range(2)
    ]
    assert {r.status_code for r in await asyncio.gather(*requests)} == {200}
    me = (await api.client.get("/api/users/me", headers=fan["headers"])).json()
    assert me["following_count"] == 20
    for star in stars:
        profile = (await api.client.get(f"/api/users/{star['id']}", headers=fan["headers"])).json()
        assert profile["followers_count"] == 1
