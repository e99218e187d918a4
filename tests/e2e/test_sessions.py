"""Sessions through the gateway: refresh tokens rotate, a reused one ends its session, and
logging out stops the session's access tokens at once (docs/api.md, the social layer)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from helpers import Api
from media_helpers import assert_problem


def bearer(auth: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth['access_token']}"}


async def refresh(api: Api, token: str) -> httpx.Response:
    return await api.client.post("/api/auth/refresh", json={"refresh_token": token})


async def logout(api: Api, token: str) -> httpx.Response:
    return await api.client.post("/api/auth/logout", json={"refresh_token": token})


async def me(api: Api, auth: dict[str, Any]) -> int:
    return (await api.client.get("/api/users/me", headers=bearer(auth))).status_code


async def test_signup_and_login_start_a_session_with_a_refresh_token(api: Api) -> None:
    ana = await api.signup("ana")
    assert ana["refresh_expires_in"] == 30 * 86400
    assert len(ana["refresh_token"]) >= 32
    login = await api.client.post(
        "/api/auth/login", json={"login": "ana", "password": "correct horse battery"}
    )
    assert login.status_code == 200, login.text
    assert login.json()["refresh_token"] != ana["refresh_token"]  # another session


async def test_a_refresh_rotates_the_pair(api: Api) -> None:
    ana = await api.signup("ana")
    renewed = await refresh(api, ana["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    pair = renewed.json()
    assert pair["user"]["username"] == "ana"
    assert pair["refresh_token"] != ana["refresh_token"]
    assert await me(api, pair) == 200
    again = await refresh(api, pair["refresh_token"])
    assert again.status_code == 200, again.text


async def test_a_reused_refresh_token_ends_the_whole_session(api: Api) -> None:
    ana = await api.signup("ana")
    other = (
        await api.client.post(
            "/api/auth/login", json={"login": "ana", "password": "correct horse battery"}
        )
    ).json()
    pair = (await refresh(api, ana["refresh_token"])).json()
    stolen = await refresh(api, ana["refresh_token"])  # the first token, a second time
    assert_problem(stolen, 401)
    # Every token of that session stops: the new refresh token and both access tokens.
    assert_problem(await refresh(api, pair["refresh_token"]), 401)
    assert await me(api, pair) == 401
    assert await me(api, ana) == 401
    # Another session of the same user is not touched.
    assert await me(api, other) == 200
    assert (await refresh(api, other["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_with_one_token_let_one_through_then_end_it(
    api: Api,
) -> None:
    ana = await api.signup("ana")
    answers = await asyncio.gather(*(refresh(api, ana["refresh_token"]) for _ in range(5)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 401, 401, 401, 401]
    (winner,) = [a.json() for a in answers if a.status_code == 200]
    # The copies revealed a second holder of the token: the session is over for both.
    assert_problem(await refresh(api, winner["refresh_token"]), 401)
    assert await me(api, winner) == 401


async def test_logout_stops_the_sessions_access_tokens_at_once(api: Api) -> None:
    ana = await api.signup("ana")
    pair = (await refresh(api, ana["refresh_token"])).json()
    assert await me(api, pair) == 200
    response = await logout(api, pair["refresh_token"])
    assert response.status_code == 204, response.text
    assert await me(api, pair) == 401
    assert await me(api, ana) == 401  # an earlier access token of the same session too
    feed = await api.client.get("/api/feed", headers=bearer(pair))  # the fast route as well
    assert_problem(feed, 401)
    assert_problem(await refresh(api, pair["refresh_token"]), 401)
    # Logging out again is fine; a token never issued is not.
    assert (await logout(api, pair["refresh_token"])).status_code == 204
    assert_problem(await logout(api, "not-a-token"), 401)


@pytest.mark.parametrize("token", ["", "x" * 201, "never-issued"])
async def test_a_bad_refresh_token_is_refused(api: Api, token: str) -> None:
    response = await refresh(api, token)
    assert_problem(response, 422 if token == "" or len(token) > 200 else 401)


@pytest.mark.parametrize("system_overrides", [{"refresh_token_ttl_seconds": 1}])
async def test_an_expired_refresh_token_is_refused(api: Api) -> None:
    ana = await api.signup("ana")
    await asyncio.sleep(1.2)
    assert_problem(await refresh(api, ana["refresh_token"]), 401)
    assert await me(api, ana) == 200  # the access token lives on until its own expiry


async def test_a_lost_mark_comes_back_with_the_next_refresh_of_the_ended_session(
    api: Api, system: Any
) -> None:
    ana = await api.signup("ana")
    pair = (await refresh(api, ana["refresh_token"])).json()
    assert (await logout(api, pair["refresh_token"])).status_code == 204
    redis = system.services["user-service"].state.users.revoked.redis
    marks = [key async for key in redis.scan_iter(match="rv:*")]
    assert len(marks) == 1
    await redis.delete(*marks)  # as if Redis had lost it
    assert await me(api, pair) == 200  # the gap: until the mark is back, the token works
    assert_problem(await refresh(api, pair["refresh_token"]), 401)
    assert await me(api, pair) == 401
