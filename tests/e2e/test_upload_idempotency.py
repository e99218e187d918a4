"""POST /api/upload with an Idempotency-Key: a retry makes no second post, a lost answer
loses no media, a key used for another upload is refused (docs/api.md, "Idempotent uploads")."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

import imagefactory as make
from helpers import Api
from media_helpers import assert_problem, fetch_variant, stored, swept

PHOTOS = [make.jpeg(120, 90), make.png(90, 120)]


async def keyed_upload(
    api: Api,
    user: dict[str, Any],
    key: str | None,
    photos: list[bytes] = PHOTOS,
    caption: str = "twice",
) -> httpx.Response:
    """An upload as a client sends it: every call frames it anew (a fresh boundary)."""
    headers = dict(user["headers"])
    if key is not None:
        headers["Idempotency-Key"] = key
    files = [("file", (f"{i}.img", photo, "image/jpeg")) for i, photo in enumerate(photos)]
    return await api.client.post(
        "/api/upload", headers=headers, files=files, data={"caption": caption}
    )


async def posts_of(api: Api, user: dict[str, Any]) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"/api/users/{user['id']}/posts", params={"limit": 100}, headers=user["headers"]
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def assert_media_served(api: Api, user: dict[str, Any], post: dict[str, Any]) -> None:
    for item in post["media"]:
        got = await api.client.get(f"/api/media/{item['media_id']}", headers=user["headers"])
        assert got.status_code == 200, got.text
        for variant in item["variants"].values():
            assert (await fetch_variant(api, variant["url"])).status_code == 200


async def test_a_retry_with_the_same_key_answers_the_first_post_again(
    api: Api, system: Any
) -> None:
    ana = await api.signup("ana")
    first = await keyed_upload(api, ana, "7f9c0b8e-2f4a-4a8e-9d6f-1c2b3a4d5e6f")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    after_first = await stored(system)
    again = await keyed_upload(api, ana, "7f9c0b8e-2f4a-4a8e-9d6f-1c2b3a4d5e6f")
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    # Made once: the retry stored nothing, not even media to throw away.
    assert [p["post_id"] for p in await posts_of(api, ana)] == [first.json()["post_id"]]
    assert await stored(system) == after_first
    # Without a key, or with another one, an upload is a new post.
    assert (await keyed_upload(api, ana, None)).status_code == 201
    other = await keyed_upload(api, ana, "another-key")
    assert other.status_code == 201
    assert other.json()["post_id"] != first.json()["post_id"]
    assert len(await posts_of(api, ana)) == 3


async def test_the_same_key_for_a_different_upload_is_a_422(api: Api, system: Any) -> None:
    ana = await api.signup("ana")
    assert (await keyed_upload(api, ana, "k-1")).status_code == 201
    before = await stored(system)
    different = {
        "caption": await keyed_upload(api, ana, "k-1", caption="other words"),
        "file bytes": await keyed_upload(api, ana, "k-1", photos=[PHOTOS[0], make.png(91, 120)]),
        "file order": await keyed_upload(api, ana, "k-1", photos=PHOTOS[::-1]),
        "fewer files": await keyed_upload(api, ana, "k-1", photos=PHOTOS[:1]),
    }
    for case, response in different.items():
        body = assert_problem(response, 422)
        assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"], case
    assert await stored(system) == before
    assert len(await posts_of(api, ana)) == 1


async def test_keys_belong_to_their_user(api: Api) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    mine = await keyed_upload(api, ana, "shared-key")
    theirs = await keyed_upload(api, bob, "shared-key")
    assert mine.status_code == theirs.status_code == 201
    assert theirs.json()["user_id"] == bob["id"]
    assert theirs.json()["post_id"] != mine.json()["post_id"]


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "caf\u00e9", "tab\there"])
async def test_a_malformed_key_is_a_422_and_stores_nothing(api: Api, system: Any, key: str) -> None:
    ana = await api.signup("ana")
    before = await stored(system)
    headers = {**ana["headers"], "Idempotency-Key": key}
    files = [("file", ("a.jpg", PHOTOS[0], "image/jpeg"))]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system.gateway), base_url="http://testserver"
    ) as client:
        response = await client.post(
            "/api/upload",
            headers=[(k.encode(), v.encode("utf-8")) for k, v in headers.items()],
            files=files,
        )
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await stored(system) == before


async def test_the_longest_key_is_accepted(api: Api) -> None:
    ana = await api.signup("ana")
    key = "~" * 255
    assert (await keyed_upload(api, ana, key)).status_code == 201
    assert (await keyed_upload(api, ana, key)).headers["idempotent-replayed"] == "true"


@pytest.fixture
def lose_first_post_answer(system: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The gateway's first call to create a post reaches post-service, which commits, but
    its answer is lost (a timeout, a reset connection): what a slow hop after a commit did."""
    client = system.gateway.state.peers.posts
    real = client.http._transport
    lost: list[int] = []

    class LosesAnswer(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await real.handle_async_request(request)
            if request.url.path == "/posts" and not lost:
                await response.aread()
                lost.append(response.status_code)
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return response

    monkeypatch.setattr(client.http, "_transport", LosesAnswer())
    return lost


async def test_a_lost_answer_keeps_the_posts_media_and_the_retry_answers_that_post(
    api: Api, system: Any, lose_first_post_answer: list[int]
) -> None:
    ana = await api.signup("ana")
    lost = await keyed_upload(api, ana, "lost-answer")
    assert_problem(lost, 503)
    assert lose_first_post_answer == [201]  # the post was made; only its answer is gone
    [made] = await posts_of(api, ana)
    # The sweeper, asking post-service, leaves the live post's media alone.
    await swept(system)
    await assert_media_served(api, ana, made)
    retry = await keyed_upload(api, ana, "lost-answer")
    assert retry.status_code == 201, retry.text
    assert retry.json() == made
    assert retry.headers["idempotent-replayed"] == "true"
    assert [p["post_id"] for p in await posts_of(api, ana)] == [made["post_id"]]
    counts = await stored(system)
    assert (counts["posts"], counts["media"], counts["blobs"]) == (1, 2, 8)


async def test_a_lost_answer_without_a_key_still_keeps_the_media(
    api: Api, system: Any, lose_first_post_answer: list[int]
) -> None:
    ana = await api.signup("ana")
    assert_problem(await keyed_upload(api, ana, None), 503)
    [made] = await posts_of(api, ana)
    counts = await swept(system)
    assert (counts["posts"], counts["media"], counts["blobs"]) == (1, 2, 8)
    await assert_media_served(api, ana, made)


async def test_concurrent_uploads_with_one_key_make_one_post(api: Api, system: Any) -> None:
    ana = await api.signup("ana")
    responses = await asyncio.gather(*(keyed_upload(api, ana, "at-once") for _ in range(3)))
    assert [r.status_code for r in responses] == [201, 201, 201], [r.text for r in responses]
    assert len({r.json()["post_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 2
    assert len(await posts_of(api, ana)) == 1
    # The media of the requests that lost the race are swept, objects included.
    counts = await swept(system)
    assert (counts["posts"], counts["media"], counts["post_media"], counts["blobs"]) == (1, 2, 2, 8)


async def test_a_key_is_kept_for_its_window_then_forgotten(api: Api, system: Any) -> None:
    ana = await api.signup("ana")
    posts = system.services["post-service"].state.posts
    assert posts.idempotency_window == timedelta(hours=24)
    first = await keyed_upload(api, ana, "daily")
    assert (await keyed_upload(api, ana, "daily")).json() == first.json()
    # Past the window the key names nothing: the same upload is a new post, and the purge
    # (hourly) deletes what is left of the old use.
    posts.idempotency_window = timedelta(0)
    assert await posts.purge_idempotency_keys() == 1
    later = await keyed_upload(api, ana, "daily")
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert later.json()["post_id"] != first.json()["post_id"]
    posts.idempotency_window = timedelta(hours=24)
    assert (await keyed_upload(api, ana, "daily")).json() == later.json()
