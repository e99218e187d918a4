"""Auth, users and follows through the gateway, as a mobile client uses them."""

from __future__ import annotations

import pytest

from helpers import Api

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert "detail" in body
    assert "type" in body
    return body


async def test_signup_returns_user_and_token(api: Api) -> None:
    response = await api.client.post(
        "/api/auth/signup",
        json={
            "username": "Ana.Lima",
            "email": "Ana@Example.com",
            "password": "s3cret-pass",
            "first_name": "Ana",
            "last_name": "Lima",
            "location": "Lisbon",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    user = body["user"]
    assert user["username"] == "ana.lima"
    assert user["email"] == "Ana@Example.com"
    assert isinstance(user["user_id"], str)
    assert user["user_id"].isdigit()
    assert user["created_at"].endswith("Z")
    assert len(user["created_at"]) == 24
    assert (user["followers_count"], user["following_count"], user["posts_count"]) == (0, 0, 0)
    assert "password" not in response.text
    assert "argon2" not in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "email": "a@b.io", "password": "longenough"},
        {"username": "has space", "email": "a@b.io", "password": "longenough"},
        {"username": "x" * 31, "email": "a@b.io", "password": "longenough"},
        {"username": "okname", "email": "not-an-email", "password": "longenough"},
        {"username": "okname", "email": "a@b.io", "password": "short"},
        {"username": "okname", "email": "a@b.io", "password": "p" * 129},
        {"username": "okname", "email": "a@b.io"},
    ],
)
async def test_signup_rejects_invalid_input(api: Api, body: dict) -> None:
    problem = assert_problem(await api.client.post("/api/auth/signup", json=body), 422)
    assert problem["errors"]


async def test_signup_conflicts_ignore_case(api: Api) -> None:
    await api.signup("ana")
    taken_name = await api.client.post(
        "/api/auth/signup",
        json={"username": "ANA", "email": "other@example.com", "password": "longenough"},
    )
    assert_problem(taken_name, 409)
    taken_email = await api.client.post(
        "/api/auth/signup",
        json={"username": "other", "email": "ANA@example.com", "password": "longenough"},
    )
    assert_problem(taken_email, 409)


async def test_login_by_username_or_email_ignoring_case(api: Api) -> None:
    ana = await api.signup("ana")
    for login in ("ana", "ANA", "ana@example.com", "Ana@Example.COM"):
        response = await api.client.post(
            "/api/auth/login", json={"login": login, "password": "correct horse battery"}
        )
        assert response.status_code == 200, login
        assert response.json()["user"]["user_id"] == ana["id"]


async def test_login_failures_are_the_same_401(api: Api) -> None:
    await api.signup("ana")
    wrong = await api.client.post(
        "/api/auth/login", json={"login": "ana", "password": "wrong-pass"}
    )
    unknown = await api.client.post(
        "/api/auth/login", json={"login": "nobody", "password": "wrong-pass"}
    )
    assert assert_problem(wrong, 401) == assert_problem(unknown, 401)
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_me_and_lookups(api: Api) -> None:
    ana = await api.signup("ana", first_name="Ana")
    me = await api.client.get("/api/users/me", headers=ana["headers"])
    assert me.status_code == 200
    assert me.json()["email"] == "ana@example.com"
    by_id = await api.client.get(f"/api/users/{ana['id']}", headers=ana["headers"])
    assert by_id.status_code == 200
    assert "email" not in by_id.json()
    assert by_id.json()["first_name"] == "Ana"
    by_name = await api.client.get("/api/users/by-username/ANA", headers=ana["headers"])
    assert by_name.json()["user_id"] == ana["id"]
    assert_problem(await api.client.get("/api/users/123456789", headers=ana["headers"]), 404)
    assert_problem(await api.client.get("/api/users/not-a-number", headers=ana["headers"]), 404)
    assert_problem(
        await api.client.get("/api/users/by-username/nobody", headers=ana["headers"]), 404
    )


async def test_every_endpoint_but_signup_and_login_needs_a_token(api: Api) -> None:
    ana = await api.signup("ana")
    for method, path in [
        ("GET", "/api/users/me"),
        ("GET", f"/api/users/{ana['id']}"),
        ("POST", f"/api/users/{ana['id']}/follow"),
        ("GET", "/api/feed"),
        ("GET", f"/api/users/{ana['id']}/followers"),
    ]:
        response = await api.client.request(method, path)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_follow_unfollow_counts_and_pages(api: Api) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    cy = await api.signup("cyd")
    for follower in (bob, cy):
        response = await api.client.post(
            f"/api/users/{ana['id']}/follow", headers=follower["headers"]
        )
        assert response.status_code == 200
        assert response.json() == {"following": True}
    again = await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    assert again.status_code == 200
    profile = (await api.client.get(f"/api/users/{ana['id']}", headers=ana["headers"])).json()
    assert profile["followers_count"] == 2
    bob_profile = (await api.client.get("/api/users/me", headers=bob["headers"])).json()
    assert bob_profile["following_count"] == 1
    followers = (
        await api.client.get(f"/api/users/{ana['id']}/followers", headers=ana["headers"])
    ).json()
    assert [u["username"] for u in followers["items"]] == ["cyd", "bob"]  # newest follow first
    assert followers["next_cursor"] is None
    following = (
        await api.client.get(f"/api/users/{bob['id']}/following", headers=ana["headers"])
    ).json()
    assert [u["username"] for u in following["items"]] == ["ana"]
    gone = await api.client.delete(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    assert gone.status_code == 204
    assert gone.content == b""
    gone_again = await api.client.delete(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    assert gone_again.status_code == 204
    profile = (await api.client.get(f"/api/users/{ana['id']}", headers=ana["headers"])).json()
    assert profile["followers_count"] == 1


async def test_follow_errors(api: Api) -> None:
    ana = await api.signup("ana")
    assert_problem(
        await api.client.post(f"/api/users/{ana['id']}/follow", headers=ana["headers"]), 422
    )
    assert_problem(await api.client.post("/api/users/99999999/follow", headers=ana["headers"]), 404)
    assert_problem(
        await api.client.delete("/api/users/99999999/follow", headers=ana["headers"]), 404
    )
    assert_problem(
        await api.client.get("/api/users/99999999/followers", headers=ana["headers"]), 404
    )
    assert_problem(
        await api.client.get("/api/users/99999999/following", headers=ana["headers"]), 404
    )


async def test_cursor_paging_returns_everyone_once_whatever_the_limit(api: Api) -> None:
    star = await api.signup("star")
    fans = [await api.signup(f"fan{i}") for i in range(7)]
    for fan in fans:
        await api.client.post(f"/api/users/{star['id']}/follow", headers=fan["headers"])
    expected = [f"fan{i}" for i in reversed(range(7))]
    for limit in (1, 2, 3, 7, 100):
        seen, cursor = [], None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = (
                await api.client.get(
                    f"/api/users/{star['id']}/followers", params=params, headers=star["headers"]
                )
            ).json()
            seen += [u["username"] for u in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, limit


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 0}, 422),
        ({"limit": 101}, 422),
        ({"limit": "x"}, 422),
        ({"cursor": "!!!"}, 400),
        ({"cursor": "e30"}, 400),
    ],
)
async def test_bad_paging_parameters(api: Api, params: dict, status: int) -> None:
    ana = await api.signup("ana")
    response = await api.client.get(
        f"/api/users/{ana['id']}/followers", params=params, headers=ana["headers"]
    )
    assert_problem(response, status)
