"""Deleting an account (DELETE /api/users/me): everything docs/api.md lists goes, through
events, within 5 seconds; the username and email are free at once; every other account's
counts stay exact."""

from __future__ import annotations

from typing import Any

from helpers import Api, eventually, feed_ids, post_photo
from media_helpers import assert_problem

PASSWORD = "correct horse battery"


async def delete_me(api: Api, user: dict[str, Any], password: str = PASSWORD) -> Any:
    return await api.client.request(
        "DELETE", "/api/users/me", headers=user["headers"], json={"password": password}
    )


async def profile(api: Api, viewer: dict[str, Any], user_id: str) -> Any:
    return await api.client.get(f"/api/users/{user_id}", headers=viewer["headers"])


async def test_a_wrong_password_deletes_nothing(api: Api) -> None:
    ana = await api.signup("ana")
    assert_problem(await delete_me(api, ana, "not the password"), 401)
    for body in ({}, {"password": ""}, {"password": PASSWORD, "extra": 1}):
        response = await api.client.request(
            "DELETE", "/api/users/me", headers=ana["headers"], json=body
        )
        assert_problem(response, 422)
    assert (await api.client.get("/api/users/me", headers=ana["headers"])).status_code == 200


async def test_the_account_and_all_it_made_go(api: Api) -> None:
    ana, bob, eve = await api.signup("ana"), await api.signup("bob"), await api.signup("eve")
    # ana follows bob and is followed by eve; each posts; ana likes and comments bob's post.
    for follower, followee in ((ana, bob), (eve, ana), (eve, bob)):
        response = await api.client.post(
            f"/api/users/{followee['id']}/follow", headers=follower["headers"]
        )
        assert response.status_code == 200
    anas = [await post_photo(api.client, ana) for _ in range(3)]
    bobs = await post_photo(api.client, bob)
    assert (
        await api.client.post(f"/api/post/{bobs}/like", headers=ana["headers"])
    ).status_code == 200
    assert (
        await api.client.post(f"/api/post/{bobs}/like", headers=eve["headers"])
    ).status_code == 200
    comment = await api.client.post(
        f"/api/post/{bobs}/comments", headers=ana["headers"], json={"text": "nice"}
    )
    assert comment.status_code == 201
    await api.client.post(f"/api/post/{anas[0]}/like", headers=bob["headers"])

    async def eve_sees_all() -> bool:
        assert set(await feed_ids(api.client, eve)) == {*anas, bobs}
        return True

    await eventually(eve_sees_all, timeout=5)
    media = (await api.client.get(f"/api/post/{anas[0]}", headers=eve["headers"])).json()
    media_id = media["media"][0]["media_id"]

    response = await delete_me(api, ana)
    assert response.status_code == 204, response.text

    # At once: the account is gone, its tokens stop, the counts it was in move.
    assert_problem(await profile(api, bob, ana["id"]), 404)
    assert_problem(await api.client.get("/api/users/me", headers=ana["headers"]), 401)
    assert_problem(
        await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"]), 404
    )
    bob_now = (await profile(api, eve, bob["id"])).json()
    eve_now = (await profile(api, bob, eve["id"])).json()
    assert (bob_now["followers_count"], eve_now["following_count"]) == (1, 1)

    # Within 5 s: its posts leave feeds and 404, its media too, its like and comment go
    # from bob's post with exact counts, and the notifications it made are undone.
    async def everything_gone() -> bool:
        assert await feed_ids(api.client, eve) == [bobs]
        for post_id in anas:
            got = await api.client.get(f"/api/post/{post_id}", headers=eve["headers"])
            assert got.status_code == 404
        got = await api.client.get(f"/api/media/{media_id}", headers=eve["headers"])
        assert got.status_code == 404
        post = (await api.client.get(f"/api/post/{bobs}", headers=bob["headers"])).json()
        assert (post["likes_count"], post["comments_count"]) == (1, 0)
        comments = await api.client.get(f"/api/post/{bobs}/comments", headers=bob["headers"])
        assert comments.json()["items"] == []
        likers = await api.client.get(f"/api/post/{bobs}/likes", headers=bob["headers"])
        assert [u["username"] for u in likers.json()["items"]] == ["eve"]
        notes = await api.client.get("/api/notifications", headers=bob["headers"])
        assert {(n["type"], n["actor"]["username"]) for n in notes.json()["items"]} == {
            ("like", "eve"),
            ("follow", "eve"),
        }
        return True

    await eventually(everything_gone, timeout=5)

    # The username and the email are free again: a new account takes them.
    again = await api.signup("ana")
    assert again["id"] != ana["id"]
    assert again["user"]["followers_count"] == 0
    login = await api.client.post(
        "/api/auth/login", json={"login": "ana@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200
    assert login.json()["user"]["user_id"] == again["id"]


async def test_deleting_twice_is_a_401(api: Api) -> None:
    ana = await api.signup("ana")
    assert (await delete_me(api, ana)).status_code == 204
    assert_problem(await delete_me(api, ana), 401)
