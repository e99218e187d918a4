"""Posts and media through the gateway: read, delete, list a user's posts, count them."""

from __future__ import annotations

from typing import Any

import pytest

import imagefactory as make
from helpers import Api, eventually
from media_helpers import assert_problem, fetch_variant, upload


async def post_photo(
    api: Api, user: dict[str, Any], caption: str, width: int = 64
) -> dict[str, Any]:
    response = await upload(
        api, user["headers"], [("p.jpg", make.jpeg(width, 48), "image/jpeg")], caption=caption
    )
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()
    return post


async def posts_count(api: Api, user: dict[str, Any]) -> int:
    profile = await api.client.get(f"/api/users/{user['id']}", headers=user["headers"])
    count: int = profile.json()["posts_count"]
    return count


async def test_get_then_delete_a_post(api: Api, system: Any) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    post = await post_photo(api, ana, "hello")
    path = f"/api/post/{post['post_id']}"
    for reader in (ana, bob):
        got = await api.client.get(path, headers=reader["headers"])
        assert got.status_code == 200
        assert got.json() == post
    assert post["created_at"].endswith("Z")
    assert len(post["created_at"]) == 24
    deleted = await api.client.delete(path, headers=ana["headers"])
    assert deleted.status_code == 204
    assert deleted.content == b""
    # Gone at once, for everyone, and a second delete finds nothing.
    for reader in (ana, bob):
        assert_problem(await api.client.get(path, headers=reader["headers"]), 404)
    assert_problem(await api.client.delete(path, headers=ana["headers"]), 404)


async def test_only_the_author_can_delete(api: Api) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    post = await post_photo(api, ana, "mine")
    path = f"/api/post/{post['post_id']}"
    assert_problem(await api.client.delete(path, headers=bob["headers"]), 403)
    assert (await api.client.get(path, headers=bob["headers"])).status_code == 200


@pytest.mark.parametrize("post_id", ["7258416120135680", "0", "-1", "abc", "9" * 30])
async def test_unknown_posts_are_404(api: Api, post_id: str) -> None:
    ana = await api.signup("ana")
    assert_problem(await api.client.get(f"/api/post/{post_id}", headers=ana["headers"]), 404)
    assert_problem(await api.client.delete(f"/api/post/{post_id}", headers=ana["headers"]), 404)


async def test_posts_need_a_token(api: Api) -> None:
    ana = await api.signup("ana")
    post = await post_photo(api, ana, "private api")
    for method, path in [
        ("GET", f"/api/post/{post['post_id']}"),
        ("DELETE", f"/api/post/{post['post_id']}"),
        ("GET", f"/api/users/{ana['id']}/posts"),
        ("GET", f"/api/media/{post['media'][0]['media_id']}"),
    ]:
        response = await api.client.request(method, path)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_users_posts_newest_first_every_post_once_whatever_the_limit(api: Api) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    made = [await post_photo(api, ana, f"post {i}") for i in range(7)]
    await post_photo(api, bob, "not ana's")
    gone = made.pop(3)
    await api.client.delete(f"/api/post/{gone['post_id']}", headers=ana["headers"])
    expected = [p["post_id"] for p in reversed(made)]
    for limit in (1, 2, 3, 6, 100):
        seen, cursor = [], None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            response = await api.client.get(
                f"/api/users/{ana['id']}/posts", params=params, headers=bob["headers"]
            )
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= limit
            seen += [p["post_id"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, limit
    first = (await api.client.get(f"/api/users/{ana['id']}/posts", headers=bob["headers"])).json()
    assert first["items"][0] == made[-1]
    assert first["next_cursor"] is None


async def test_a_users_posts_errors(api: Api) -> None:
    ana = await api.signup("ana")
    empty = await api.client.get(f"/api/users/{ana['id']}/posts", headers=ana["headers"])
    assert empty.json() == {"items": [], "next_cursor": None}
    for user_id in ("7258416120135680", "nope"):
        response = await api.client.get(f"/api/users/{user_id}/posts", headers=ana["headers"])
        assert_problem(response, 404)
    for params, status in [({"limit": 0}, 422), ({"limit": 101}, 422), ({"cursor": "!!!"}, 400)]:
        response = await api.client.get(
            f"/api/users/{ana['id']}/posts", params=params, headers=ana["headers"]
        )
        assert_problem(response, status)


async def test_media_lookup_and_bytes(api: Api) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    post = await post_photo(api, ana, "media", width=500)
    item = post["media"][0]
    got = await api.client.get(f"/api/media/{item['media_id']}", headers=bob["headers"])
    assert got.status_code == 200
    assert got.json() == item
    # Never upscaled: a 500-pixel-wide original gives medium and large 500 wide.
    widths = {name: v["width"] for name, v in item["variants"].items()}
    assert widths == {"thumbnail": 150, "small": 320, "medium": 500, "large": 500}
    for media_id in ("7258416120135680", "x"):
        assert_problem(await api.client.get(f"/api/media/{media_id}", headers=ana["headers"]), 404)
    assert_problem(await api.client.get(f"/api/media/{item['media_id']}/huge.jpg"), 404)
    assert_problem(await api.client.get("/api/media/7258416120135680/large.jpg"), 404)
    thumbnail = await fetch_variant(api, item["variants"]["thumbnail"]["url"])
    assert thumbnail.status_code == 200
    assert thumbnail.content.startswith(b"\xff\xd8\xff")


async def test_posts_count_follows_creates_and_deletes(api: Api) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    posts = [await post_photo(api, ana, f"p{i}") for i in range(3)]

    async def count_is(expected: int) -> bool:
        assert await posts_count(api, ana) == expected
        return True

    await eventually(lambda: count_is(3))
    await api.client.delete(f"/api/post/{posts[0]['post_id']}", headers=ana["headers"])
    await eventually(lambda: count_is(2))
    # A refused delete and a repeated one change nothing.
    await api.client.delete(f"/api/post/{posts[1]['post_id']}", headers=bob["headers"])
    await api.client.delete(f"/api/post/{posts[0]['post_id']}", headers=ana["headers"])
    await post_photo(api, ana, "p3")
    await eventually(lambda: count_is(3))
    me = (await api.client.get("/api/users/me", headers=ana["headers"])).json()
    assert me["posts_count"] == 3
