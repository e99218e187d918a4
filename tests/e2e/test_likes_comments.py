"""Likes and comments through the gateway (docs/api.md, the social layer): idempotent
likes with exact counts under concurrency, the viewer's state on every post, comments paged
oldest first and deleted by their author or the post's, and a deleted post taking its
likes and comments with it."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

import gateway.ratelimit as ratelimit
from helpers import Api, eventually, post_photo
from media_helpers import assert_problem


async def like(api: Api, user: dict[str, Any], post_id: str) -> Any:
    return await api.client.post(f"/api/post/{post_id}/like", headers=user["headers"])


async def unlike(api: Api, user: dict[str, Any], post_id: str) -> Any:
    return await api.client.delete(f"/api/post/{post_id}/like", headers=user["headers"])


async def get_post(api: Api, user: dict[str, Any], post_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/post/{post_id}", headers=user["headers"])
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def comment(api: Api, user: dict[str, Any], post_id: str, text: str) -> Any:
    return await api.client.post(
        f"/api/post/{post_id}/comments", headers=user["headers"], json={"text": text}
    )


async def pages(api: Api, user: dict[str, Any], path: str, limit: int) -> list[dict[str, Any]]:
    """Every item of a paged list, paging to the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await api.client.get(path, params=params, headers=user["headers"])
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_a_like_is_idempotent_and_shows_on_the_post(api: Api) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    post_id = await post_photo(api.client, ana)
    fresh = await get_post(api, bob, post_id)
    assert (fresh["likes_count"], fresh["comments_count"], fresh["viewer"]) == (
        0,
        0,
        {"liked": False},
    )
    for _ in range(2):
        response = await like(api, bob, post_id)
        assert response.status_code == 200, response.text
        assert response.json() == {"liked": True, "likes_count": 1}
    seen_by_bob = await get_post(api, bob, post_id)
    assert (seen_by_bob["likes_count"], seen_by_bob["viewer"]) == (1, {"liked": True})
    seen_by_ana = await get_post(api, ana, post_id)
    assert (seen_by_ana["likes_count"], seen_by_ana["viewer"]) == (1, {"liked": False})
    profile = (await api.client.get(f"/api/users/{ana['id']}/posts", headers=bob["headers"])).json()
    assert [(p["likes_count"], p["viewer"]["liked"]) for p in profile["items"]] == [(1, True)]
    for _ in range(2):
        response = await unlike(api, bob, post_id)
        assert response.status_code == 200, response.text
        assert response.json() == {"liked": False, "likes_count": 0}
    assert (await get_post(api, bob, post_id))["viewer"] == {"liked": False}


async def test_likes_of_an_unknown_or_deleted_post_are_404(api: Api) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    post_id = await post_photo(api.client, ana)
    assert (await like(api, bob, post_id)).status_code == 200
    assert (await comment(api, bob, post_id, "nice")).status_code == 201
    deleted = await api.client.delete(f"/api/post/{post_id}", headers=ana["headers"])
    assert deleted.status_code == 204
    for missing in (post_id, "123456789", "not-an-id"):
        for response in (
            await like(api, bob, missing),
            await unlike(api, bob, missing),
            await api.client.get(f"/api/post/{missing}/likes", headers=bob["headers"]),
            await comment(api, bob, missing, "hello"),
            await api.client.get(f"/api/post/{missing}/comments", headers=bob["headers"]),
        ):
            assert_problem(response, 404)


async def test_a_like_storm_and_concurrent_unlikes_leave_exact_counts(api: Api) -> None:
    ana = await api.signup("ana")
    post_id = await post_photo(api.client, ana)
    fans: list[dict[str, Any]] = []
    for start in range(0, 1000, 50):
        fans += await asyncio.gather(*(api.signup(f"fan{i:04d}") for i in range(start, start + 50)))
    # 1,000 people like the post at once. A 503 (the embedded mode's one SQLite writer can
    # fall behind the deadline) is retried as a client would: a like is idempotent.

    async def insisting(action: Any, fan: dict[str, Any]) -> Any:
        for _ in range(20):
            response = await action(api, fan, post_id)
            if response.status_code != 503:
                return response
            await asyncio.sleep(0.5)
        return response

    answers = await asyncio.gather(*(insisting(like, fan) for fan in fans))
    assert [r.status_code for r in answers if r.status_code != 200] == []
    assert max(r.json()["likes_count"] for r in answers) == 1000
    assert (await get_post(api, ana, post_id))["likes_count"] == 1000
    # Then 200 of them at once: the even ones unlike, the odd ones like again.

    async def second(i: int, fan: dict[str, Any]) -> Any:
        return await insisting(unlike if i % 2 == 0 else like, fan)

    answers = await asyncio.gather(*(second(i, fan) for i, fan in enumerate(fans[:200])))
    assert [r.status_code for r in answers if r.status_code != 200] == []
    assert (await get_post(api, ana, post_id))["likes_count"] == 900
    likers = await pages(api, ana, f"/api/post/{post_id}/likes", limit=100)
    expected = {f"fan{i:04d}" for i in range(1000) if i >= 200 or i % 2}
    assert len(likers) == 900
    assert {u["username"] for u in likers} == expected


@pytest.mark.parametrize("system_overrides", [{"rate_limit_per_minute": 5}])
async def test_likes_and_comments_are_rate_limited(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = (int(time.time()) // 60) * 60 + 30.0  # mid-window: the test never straddles two
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: now))
    ana = await api.signup("ana")  # counted by address, not against ana
    post_id = await post_photo(api.client, ana)
    for _ in range(2):
        assert (await like(api, ana, post_id)).status_code == 200
    assert (await comment(api, ana, post_id, "one")).status_code == 201
    assert (await unlike(api, ana, post_id)).status_code == 200
    for response in (await like(api, ana, post_id), await comment(api, ana, post_id, "two")):
        assert_problem(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_likers_are_paged_newest_like_first(api: Api) -> None:
    ana = await api.signup("ana")
    post_id = await post_photo(api.client, ana)
    fans = [await api.signup(f"fan{i}") for i in range(5)]
    for fan in fans:
        assert (await like(api, fan, post_id)).status_code == 200
    for limit in (1, 2, 5, 100):
        likers = await pages(api, ana, f"/api/post/{post_id}/likes", limit=limit)
        assert [u["username"] for u in likers] == [f"fan{i}" for i in reversed(range(5))]
        assert {"user_id", "followers_count", "posts_count"} <= set(likers[0])


async def test_comments_are_paged_oldest_first_exactly(api: Api) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    post_id = await post_photo(api.client, ana)
    made = []
    for i in range(7):
        response = await comment(api, bob if i % 2 else ana, post_id, f"comment {i}\nline two")
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/api/comments/{body['comment_id']}"
        assert body["author"]["username"] == ("bob" if i % 2 else "ana")
        assert (body["post_id"], body["text"]) == (post_id, f"comment {i}\nline two")
        made.append(body)
    for limit in (1, 3, 7, 20):
        assert await pages(api, bob, f"/api/post/{post_id}/comments", limit=limit) == made
    assert (await get_post(api, bob, post_id))["comments_count"] == 7
    fetched = await api.client.get(f"/api/comments/{made[0]['comment_id']}", headers=bob["headers"])
    assert fetched.json() == made[0]


async def test_a_comment_is_deleted_by_its_author_or_the_posts_author_only(api: Api) -> None:
    ana, bob, eve = await api.signup("ana"), await api.signup("bob"), await api.signup("eve")
    post_id = await post_photo(api.client, ana)
    first = (await comment(api, bob, post_id, "first")).json()["comment_id"]
    second = (await comment(api, bob, post_id, "second")).json()["comment_id"]
    refused = await api.client.delete(f"/api/comments/{first}", headers=eve["headers"])
    assert_problem(refused, 403)
    by_author = await api.client.delete(f"/api/comments/{first}", headers=bob["headers"])
    assert by_author.status_code == 204
    by_post_author = await api.client.delete(f"/api/comments/{second}", headers=ana["headers"])
    assert by_post_author.status_code == 204
    again = await api.client.delete(f"/api/comments/{second}", headers=ana["headers"])
    assert_problem(again, 404)
    assert await pages(api, ana, f"/api/post/{post_id}/comments", limit=20) == []
    assert (await get_post(api, ana, post_id))["comments_count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},
        {"text": "   \n "},
        {"text": "x" * 2201},
        {"text": "bell\x07"},
        {"text": "nul\x00"},
        {"text": "escape\x1b[31m"},
        {},
        {"text": 5},
        {"text": "ok", "extra": 1},
    ],
)
async def test_a_bad_comment_is_a_422_and_adds_nothing(api: Api, body: dict[str, Any]) -> None:
    ana = await api.signup("ana")
    post_id = await post_photo(api.client, ana)
    response = await api.client.post(
        f"/api/post/{post_id}/comments", headers=ana["headers"], json=body
    )
    assert_problem(response, 422)
    assert await pages(api, ana, f"/api/post/{post_id}/comments", limit=20) == []
    assert (await get_post(api, ana, post_id))["comments_count"] == 0


async def test_the_longest_comment_and_line_breaks_are_kept(api: Api) -> None:
    ana = await api.signup("ana")
    post_id = await post_photo(api.client, ana)
    for text in ("x" * 2200, "tab\tand\r\nbreak"):
        response = await comment(api, ana, post_id, text)
        assert response.status_code == 201, response.text
        assert response.json()["text"] == text.replace("\r\n", "\n")


async def test_the_feed_carries_counts_and_the_readers_like(api: Api) -> None:
    ana, bob, eve = await api.signup("ana"), await api.signup("bob"), await api.signup("eve")
    for reader in (bob, eve):
        response = await api.client.post(
            f"/api/users/{ana['id']}/follow", headers=reader["headers"]
        )
        assert response.status_code == 200
    post_id = await post_photo(api.client, ana)

    async def in_feed(reader: dict[str, Any]) -> dict[str, Any]:
        page = (await api.client.get("/api/feed", headers=reader["headers"])).json()
        (item,) = [p for p in page["items"] if p["post_id"] == post_id]
        found: dict[str, Any] = item
        return found

    first = await eventually(lambda: in_feed(bob))
    assert (first["likes_count"], first["comments_count"], first["viewer"]) == (
        0,
        0,
        {"liked": False},
    )
    assert (await like(api, bob, post_id)).status_code == 200
    assert (await comment(api, eve, post_id, "lovely")).status_code == 201

    async def updated(reader: dict[str, Any], liked: bool) -> bool:
        item = await in_feed(reader)
        assert (item["likes_count"], item["comments_count"]) == (1, 1)
        assert item["viewer"] == {"liked": liked}
        return True

    await eventually(lambda: updated(bob, True), timeout=5)
    await eventually(lambda: updated(eve, False), timeout=5)
    assert (await unlike(api, bob, post_id)).status_code == 200

    async def taken_back() -> bool:
        item = await in_feed(bob)
        assert (item["likes_count"], item["viewer"]) == (0, {"liked": False})
        return True

    await eventually(taken_back, timeout=5)
