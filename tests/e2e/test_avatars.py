"""Avatars (PUT and DELETE /api/users/me/avatar): centre-cropped JPEG squares of 150 and
320 pixels with no metadata, shown on every User; replacing or removing one takes the old
bytes away, and so does deleting the account."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

import imagefactory as make
from helpers import Api, eventually
from media_helpers import assert_problem, fetch_variant


async def put_avatar(api: Api, user: dict[str, Any], *files: tuple[str, bytes, str]) -> Any:
    return await api.client.put(
        "/api/users/me/avatar", headers=user["headers"], files=[("file", f) for f in files]
    )


def urls(avatar: dict[str, Any]) -> list[str]:
    return [avatar[name]["url"] for name in ("thumbnail", "small")]


async def test_an_avatar_is_two_bare_squares_shown_on_the_user(api: Api) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    assert ana["user"]["avatar"] is None
    photo = make.jpeg(400, 300, exif_orientation=6, gps=True)  # upright 300 x 400
    response = await put_avatar(api, ana, ("me.jpg", photo, "image/jpeg"))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["email"] == "ana@example.com"
    avatar = me["avatar"]
    sides = {name: (avatar[name]["width"], avatar[name]["height"]) for name in avatar}
    assert sides == {"thumbnail": (150, 150), "small": (320, 320)}
    for name, url in zip(("thumbnail", "small"), urls(avatar), strict=True):
        got = await fetch_variant(api, url)  # no token needed, as for media
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/jpeg"
        img = Image.open(io.BytesIO(got.content))
        assert img.format == "JPEG"
        assert img.size == sides[name]
        assert not img.getexif()
        assert "icc_profile" not in img.info
        assert "comment" not in img.info
    seen = (await api.client.get(f"/api/users/{ana['id']}", headers=bob["headers"])).json()
    assert seen["avatar"] == avatar
    await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    following = await api.client.get(f"/api/users/{bob['id']}/following", headers=bob["headers"])
    assert following.json()["items"][0]["avatar"] == avatar


async def test_a_new_avatar_replaces_the_old_and_removing_it_takes_the_bytes(
    api: Api,
) -> None:
    ana = await api.signup("ana")
    first = (await put_avatar(api, ana, ("a.png", make.png(200, 200), "image/png"))).json()
    second = (await put_avatar(api, ana, ("b.jpg", make.jpeg(500, 700), "image/jpeg"))).json()
    assert urls(first["avatar"]) != urls(second["avatar"])
    for url in urls(first["avatar"]):
        assert (await fetch_variant(api, url)).status_code == 404
    for url in urls(second["avatar"]):
        assert (await fetch_variant(api, url)).status_code == 200
    for _ in range(2):  # removing is idempotent
        response = await api.client.delete("/api/users/me/avatar", headers=ana["headers"])
        assert response.status_code == 204
    me = (await api.client.get("/api/users/me", headers=ana["headers"])).json()
    assert me["avatar"] is None
    for url in urls(second["avatar"]):
        assert (await fetch_variant(api, url)).status_code == 404


@pytest.mark.parametrize(
    ("files", "status"),
    [
        ([("a.txt", make.text(), "image/jpeg")], 415),
        ([("a.gif", make.gif(20, 20), "image/gif")], 415),
        ([("a.jpg", make.truncated_jpeg(), "image/jpeg")], 422),
        ([("a.jpg", make.jpeg(20, 20), "image/jpeg")] * 2, 422),
        ([], 422),
    ],
)
async def test_a_bad_avatar_is_refused_and_the_old_one_stays(
    api: Api, files: list[tuple[str, bytes, str]], status: int
) -> None:
    ana = await api.signup("ana")
    kept = (await put_avatar(api, ana, ("a.jpg", make.jpeg(64, 64), "image/jpeg"))).json()
    if files:
        response = await put_avatar(api, ana, *files)
    else:  # a multipart body with no file part
        response = await api.client.put(
            "/api/users/me/avatar", headers=ana["headers"], files={"other": ("x", b"1")}
        )
    assert_problem(response, status)
    me = (await api.client.get("/api/users/me", headers=ana["headers"])).json()
    assert me["avatar"] == kept["avatar"]
    for url in urls(kept["avatar"]):
        assert (await fetch_variant(api, url)).status_code == 200


async def test_a_deleted_accounts_avatar_goes_with_it(api: Api) -> None:
    ana = await api.signup("ana")
    avatar = (await put_avatar(api, ana, ("a.jpg", make.jpeg(64, 64), "image/jpeg"))).json()
    gone = await api.client.request(
        "DELETE",
        "/api/users/me",
        headers=ana["headers"],
        json={"password": "correct horse battery"},
    )
    assert gone.status_code == 204

    async def bytes_gone() -> bool:
        for url in urls(avatar["avatar"]):
            assert (await fetch_variant(api, url)).status_code == 404
        return True

    await eventually(bytes_gone, timeout=5)
