"""Profiles through the gateway: a bio and names the user edits, and the viewer's
relationship on someone else's profile (docs/api.md, the social layer)."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import Api
from media_helpers import assert_problem


async def patch_me(api: Api, user: dict[str, Any], body: dict[str, Any]) -> Any:
    return await api.client.patch("/api/users/me", headers=user["headers"], json=body)


async def test_a_new_user_has_an_empty_bio(api: Api) -> None:
    ana = await api.signup("ana")
    assert ana["user"]["bio"] == ""
    me = (await api.client.get("/api/users/me", headers=ana["headers"])).json()
    assert me["bio"] == ""
    assert "viewer" not in me


async def test_the_user_sets_the_fields_given_and_keeps_the_others(api: Api) -> None:
    ana = await api.signup("ana", first_name="Ana", location="Lisbon")
    response = await patch_me(api, ana, {"bio": "film photos\nbased in Porto", "last_name": "Lima"})
    assert response.status_code == 200, response.text
    me = response.json()
    assert (me["bio"], me["first_name"], me["last_name"], me["location"]) == (
        "film photos\nbased in Porto",
        "Ana",
        "Lima",
        "Lisbon",
    )
    assert me["email"] == "ana@example.com"
    bob = await api.signup("bob")
    seen = (await api.client.get(f"/api/users/{ana['id']}", headers=bob["headers"])).json()
    assert (seen["bio"], seen["last_name"]) == ("film photos\nbased in Porto", "Lima")
    cleared = (await patch_me(api, ana, {"location": None, "bio": None})).json()
    assert (cleared["location"], cleared["bio"], cleared["first_name"]) == (None, "", "Ana")
    assert (await patch_me(api, ana, {})).json() == cleared


@pytest.mark.parametrize(
    "body",
    [
        {"bio": "x" * 151},
        {"bio": "bell\x07"},
        {"first_name": "a" * 101},
        {"first_name": "tab\there"},
        {"email": "new@example.com"},  # not editable here
        {"username": "other"},
    ],
)
async def test_a_bad_profile_change_is_a_422_and_changes_nothing(
    api: Api, body: dict[str, Any]
) -> None:
    ana = await api.signup("ana", first_name="Ana")
    assert_problem(await patch_me(api, ana, body), 422)
    me = (await api.client.get("/api/users/me", headers=ana["headers"])).json()
    assert (me["first_name"], me["bio"], me["username"], me["email"]) == (
        "Ana",
        "",
        "ana",
        "ana@example.com",
    )


async def test_a_bio_of_150_characters_fits(api: Api) -> None:
    ana = await api.signup("ana")
    bio = "\U0001f4f7" * 150
    assert (await patch_me(api, ana, {"bio": bio})).json()["bio"] == bio


async def test_a_profile_shows_how_the_viewer_stands_with_the_user(api: Api) -> None:
    ana, bob, cat = await api.signup("ana"), await api.signup("bob"), await api.signup("cat")

    async def viewer(who: dict[str, Any], whom: dict[str, Any]) -> Any:
        response = await api.client.get(f"/api/users/{whom['id']}", headers=who["headers"])
        by_name = await api.client.get(
            f"/api/users/by-username/{whom['user']['username']}", headers=who["headers"]
        )
        assert response.json() == by_name.json()
        return response.json().get("viewer", "absent")

    assert await viewer(ana, bob) == {"following": False, "followed_by": False}
    await api.client.post(f"/api/users/{bob['id']}/follow", headers=ana["headers"])
    assert await viewer(ana, bob) == {"following": True, "followed_by": False}
    assert await viewer(bob, ana) == {"following": False, "followed_by": True}
    await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    assert await viewer(ana, bob) == {"following": True, "followed_by": True}
    assert await viewer(cat, bob) == {"following": False, "followed_by": False}
    assert await viewer(ana, ana) == "absent"  # one's own profile
    # Lists of users carry the bio, never a viewer.
    page = await api.client.get(f"/api/users/{bob['id']}/followers", headers=cat["headers"])
    (item,) = page.json()["items"]
    assert item["user_id"] == ana["id"]
    assert "viewer" not in item
    assert item["bio"] == ""
