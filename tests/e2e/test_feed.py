"""The home feed through the gateway: every line of api.md's feed semantics, both thresholds.

Each test runs twice: with the default celebrity threshold (everyone is pushed) and with a
threshold of 3 (an author with three followers is pulled at read time). The feed must read
the same either way.
"""

from __future__ import annotations

from typing import Any

import pytest

from feed_service import api as feed_api
from gateway.api import posts as gateway_posts
from helpers import Api, eventually, feed_ids, post_photo

THRESHOLDS = {"default": 10_000, "three": 3}


@pytest.fixture(params=sorted(THRESHOLDS))
def system_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"celebrity_threshold": THRESHOLDS[request.param]}


async def follow(api: Api, follower: dict[str, Any], followee: dict[str, Any]) -> None:
    response = await api.client.post(
        f"/api/users/{followee['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 200


async def unfollow(api: Api, follower: dict[str, Any], followee: dict[str, Any]) -> None:
    response = await api.client.delete(
        f"/api/users/{followee['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 204


async def crowd(api: Api, author: dict[str, Any], size: int, prefix: str) -> list[dict[str, Any]]:
    """Sign up `size` users who all follow `author` and have read their feed once."""
    fans = [await api.signup(f"{prefix}{i}") for i in range(size)]
    for fan in fans:
        await follow(api, fan, author)
        assert await feed_ids(api.client, fan) is not None
    return fans


async def test_own_posts_are_in_the_feed_newest_first(api: Api) -> None:
    ana = await api.signup("ana")
    first = await post_photo(api.client, ana, "one")
    second = await post_photo(api.client, ana, "two")

    async def both() -> bool:
        return await feed_ids(api.client, ana) == [second, first]

    await eventually(both)
    page = (await api.client.get("/api/feed", headers=ana["headers"])).json()
    item = page["items"][0]
    assert item["caption"] == "two"
    assert item["author"] == {"user_id": ana["id"], "username": "ana"}
    assert item["media"][0]["variants"]["thumbnail"]["width"] == 150


async def test_a_followed_accounts_new_post_appears(api: Api) -> None:
    ana = await api.signup("ana")
    fans = await crowd(api, ana, 3, "fan")
    post = await post_photo(api.client, ana)
    for fan in fans:

        async def arrived(fan: dict[str, Any] = fan) -> bool:
            return post in await feed_ids(api.client, fan)

        await eventually(arrived, timeout=5)


async def test_follow_backfills_at_least_the_last_20_posts_and_unfollow_removes_them(
    api: Api,
) -> None:
    ana = await api.signup("ana")
    posts = [await post_photo(api.client, ana) for _ in range(22)]
    await crowd(api, ana, 2, "early")  # with threshold 3 ana stays pushed until bob follows
    bob = await api.signup("bob")
    assert await feed_ids(api.client, bob) == []
    await follow(api, bob, ana)

    async def backfilled() -> bool:
        found = await feed_ids(api.client, bob)
        return set(posts[-20:]) <= set(found)

    await eventually(backfilled, timeout=5)
    own = await post_photo(api.client, bob)
    await unfollow(api, bob, ana)

    async def only_own() -> bool:
        return await feed_ids(api.client, bob) == [own]

    await eventually(only_own, timeout=5)


async def test_a_deleted_post_is_404_at_once_and_gone_from_feeds(api: Api) -> None:
    ana = await api.signup("ana")
    fans = await crowd(api, ana, 3, "fan")
    keep = await post_photo(api.client, ana)
    doomed = await post_photo(api.client, ana)

    async def delivered() -> bool:
        return doomed in await feed_ids(api.client, fans[0])

    await eventually(delivered)
    assert (
        await api.client.delete(f"/api/post/{doomed}", headers=ana["headers"])
    ).status_code == 204
    assert (await api.client.get(f"/api/post/{doomed}", headers=ana["headers"])).status_code == 404
    for reader in (ana, *fans):
        assert doomed not in await feed_ids(api.client, reader)  # filtered at once on read
    for reader in (ana, *fans):
        assert keep in await feed_ids(api.client, reader)


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 100])
async def test_paging_is_exact_with_many_posts_in_one_millisecond(
    api: Api, system: Any, limit: int
) -> None:
    from photogram_common.ids import IdGenerator

    ana = await api.signup("ana")
    bob = await api.signup("bob")
    fans = await crowd(api, ana, 3, "fan")
    await follow(api, fans[0], bob)
    posts_app = system.services["post-service"]
    frozen = posts_app.state.posts.ids.next_id() >> 22 << 22  # this millisecond, sequence 0
    millisecond = (frozen >> 22) + 1_767_225_600_000
    posts_app.state.posts.ids = IdGenerator(2, clock=lambda: millisecond)
    made = [await post_photo(api.client, author) for author in (ana, bob) * 4]
    expected = sorted(made, key=int, reverse=True)

    async def all_there() -> bool:
        return await feed_ids(api.client, fans[0], limit=100) == expected

    await eventually(all_there)
    assert await feed_ids(api.client, fans[0], limit=limit) == expected


async def test_the_userid_parameter_must_be_the_caller(api: Api) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    own = await api.client.get("/api/feed", params={"userId": ana["id"]}, headers=ana["headers"])
    assert own.status_code == 200
    other = await api.client.get("/api/feed", params={"userId": bob["id"]}, headers=ana["headers"])
    assert other.status_code == 403
    assert other.headers["content-type"].startswith("application/problem+json")
    for params, status in (({"limit": 0}, 422), ({"limit": 101}, 422), ({"cursor": "%%%"}, 400)):
        response = await api.client.get("/api/feed", params=params, headers=ana["headers"])
        assert response.status_code == status


async def test_the_fast_route_and_the_full_route_answer_alike(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain page query takes the fast route (photogram_common.fastroutes); any other
    form of the same request takes FastAPI's route: both give the same page, the same
    cursor and the same errors."""
    taken: list[str] = []
    for module, name in (
        (gateway_posts, "verify_access_token"),
        (feed_api, "verify_internal_token"),
    ):
        real = getattr(module, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            taken.append(_name)
            return _real(*args, **kwargs)

        # Only the fast routes verify tokens through these modules' names.
        monkeypatch.setattr(module, name, spy)
    ana = await api.signup("ana")
    posted = [await post_photo(api.client, ana, f"p{i}") for i in range(3)]

    async def all_there() -> bool:
        return await feed_ids(api.client, ana) == posted[::-1]

    await eventually(all_there)
    get = api.client.get
    taken.clear()
    fast = await get("/api/feed", params={"limit": 2}, headers=ana["headers"])
    # A plain request takes the gateway's fast route and then feed-service's.
    assert taken == ["verify_access_token", "verify_internal_token"]
    taken.clear()
    full = await get("/api/feed", params={"limit": "02", "x": "1"}, headers=ana["headers"])
    # Another form takes the gateway's route, which relays a plain query to feed-service.
    assert taken == ["verify_internal_token"]
    assert fast.status_code == full.status_code == 200
    assert fast.content == full.content
    cursor = fast.json()["next_cursor"]
    assert cursor is not None
    fast = await get("/api/feed", params={"cursor": cursor}, headers=ana["headers"])
    full = await get("/api/feed", params={"cursor": cursor, "x": "1"}, headers=ana["headers"])
    assert fast.content == full.content
    assert [i["post_id"] for i in fast.json()["items"]] == [posted[0]]
    # Errors: a bad cursor (feed-service's 400), a bad token (the route's 401).
    for extra in ({}, {"x": "1"}):
        bad = await get("/api/feed", params={"cursor": "nope", **extra}, headers=ana["headers"])
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")
        forged = await get("/api/feed", params=extra, headers={"authorization": "Bearer x.y.z"})
        assert forged.status_code == 401
        assert forged.headers["www-authenticate"] == "Bearer"
