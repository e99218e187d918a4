"""Notifications through the gateway (docs/api.md, the social layer): made by follows,
likes and comments of others within 5 seconds, at most once per (actor, type, post),
undone with the action, gone with the post, paged newest first, counted and marked read."""

from __future__ import annotations

from typing import Any

from helpers import Api, eventually, post_photo
from media_helpers import assert_problem


async def notifications(api: Api, user: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = await api.client.get("/api/notifications", headers=user["headers"], params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def unread(api: Api, user: dict[str, Any]) -> int:
    response = await api.client.get("/api/notifications/unread-count", headers=user["headers"])
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def shown(page: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(n["type"], n["actor"]["username"], n["post_id"]) for n in page["items"]]


async def settled(
    api: Api, user: dict[str, Any], expected: list[tuple[str, str, str | None]]
) -> list[dict[str, Any]]:
    """The user's notifications once they are `expected` (newest first), within 5 s."""

    async def check() -> list[dict[str, Any]]:
        page = await notifications(api, user)
        assert shown(page) == expected
        return page["items"] or [{}]

    found: list[dict[str, Any]] = await eventually(check, timeout=5)
    return found


async def test_follows_likes_and_comments_notify_the_owner(api: Api) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    post_id = await post_photo(api.client, ana)
    # Each action waits for the last one's notification: newest first is the order in
    # which notification-service met them, and they travel on different partitions.
    await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    await settled(api, ana, [("follow", "bob", None)])
    await api.client.post(f"/api/post/{post_id}/like", headers=bob["headers"])
    await settled(api, ana, [("like", "bob", post_id), ("follow", "bob", None)])
    made = await api.client.post(
        f"/api/post/{post_id}/comments", headers=bob["headers"], json={"text": "wow"}
    )
    comment_id = made.json()["comment_id"]
    items = await settled(
        api, ana, [("comment", "bob", post_id), ("like", "bob", post_id), ("follow", "bob", None)]
    )
    assert items[0]["comment_id"] == comment_id
    assert items[1]["comment_id"] is None
    assert all(n["read"] is False and n["actor"]["user_id"] == bob["id"] for n in items)
    assert all(n["created_at"].endswith("Z") for n in items)
    assert await unread(api, ana) == 3
    assert shown(await notifications(api, bob)) == []


async def test_acting_on_oneself_notifies_no_one(api: Api) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    own = await post_photo(api.client, ana)
    await api.client.post(f"/api/post/{own}/like", headers=ana["headers"])
    await api.client.post(f"/api/post/{own}/comments", headers=ana["headers"], json={"text": "me"})
    # A later action by someone else shows the earlier ones were consumed and left out.
    await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    await settled(api, ana, [("follow", "bob", None)])


async def test_like_unlike_like_leaves_one_and_undoing_removes_it(api: Api) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    post_id = await post_photo(api.client, ana)
    for method in ("POST", "DELETE", "POST"):
        await api.client.request(method, f"/api/post/{post_id}/like", headers=bob["headers"])
    # Newest first is the order notification-service met them in, and likes and follows
    # travel on different topics: the follow waits for the like's notification.
    await settled(api, ana, [("like", "bob", post_id)])
    await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    await settled(api, ana, [("follow", "bob", None), ("like", "bob", post_id)])
    await api.client.delete(f"/api/post/{post_id}/like", headers=bob["headers"])
    await api.client.delete(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    await settled(api, ana, [])
    assert await unread(api, ana) == 0


async def test_a_comments_deletion_and_the_posts_take_theirs_away(api: Api) -> None:
    ana, bob, eve = await api.signup("ana"), await api.signup("bob"), await api.signup("eve")
    kept, gone = await post_photo(api.client, ana), await post_photo(api.client, ana)
    first = await api.client.post(
        f"/api/post/{kept}/comments", headers=bob["headers"], json={"text": "one"}
    )
    await api.client.post(f"/api/post/{kept}/comments", headers=bob["headers"], json={"text": "2"})
    await settled(api, ana, [("comment", "bob", kept)])  # the order met: see the first test
    await api.client.post(f"/api/post/{gone}/like", headers=eve["headers"])
    await api.client.post(f"/api/post/{gone}/comments", headers=eve["headers"], json={"text": "x"})
    # Two comments by one actor on one post: one notification.
    await settled(
        api, ana, [("comment", "eve", gone), ("like", "eve", gone), ("comment", "bob", kept)]
    )
    await api.client.delete(f"/api/post/{gone}", headers=ana["headers"])
    await api.client.delete(f"/api/comments/{first.json()['comment_id']}", headers=bob["headers"])
    await settled(api, ana, [])


async def test_pages_run_newest_first_and_mark_read_counts_down(api: Api) -> None:
    ana = await api.signup("ana")
    fans = [await api.signup(f"fan{i}") for i in range(5)]
    # Newest first is the order in which they were made: each follow waits for the last.
    for i, fan in enumerate(fans):
        await api.client.post(f"/api/users/{ana['id']}/follow", headers=fan["headers"])
        expected = [("follow", f"fan{j}", None) for j in reversed(range(i + 1))]
        items = await settled(api, ana, expected)
    for limit in (1, 2, 5):
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await notifications(
                api, ana, limit=limit, **({"cursor": cursor} if cursor else {})
            )
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == items
    response = await api.client.post(
        "/api/notifications/mark-read",
        headers=ana["headers"],
        json={"up_to": items[2]["notification_id"]},
    )
    assert response.status_code == 204, response.text
    assert await unread(api, ana) == 2
    assert [n["read"] for n in (await notifications(api, ana))["items"]] == [
        False,
        False,
        True,
        True,
        True,
    ]


async def test_a_bad_mark_read_is_a_422(api: Api) -> None:
    ana = await api.signup("ana")
    for body in ({}, {"up_to": ""}, {"up_to": "abc"}, {"up_to": 5}, {"up_to": "1", "x": 1}):
        response = await api.client.post(
            "/api/notifications/mark-read", headers=ana["headers"], json=body
        )
        assert_problem(response, 422)
