"""Media after the upload: a deleted post's media and bytes go within 5 s (post.deleted,
consumed by media-service), and the sweeper deletes media no post was made of once their
grace has passed, never a post's (docs/media.md, "Orphans" and "Deleting a post")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from photogram_contracts.events import PostDeleted
from sqlalchemy import select

import imagefactory as make
import post_service.repository as post_repository
from helpers import Api, eventually
from media_helpers import assert_problem, fetch_variant, stored, upload
from media_service.models import media as media_table


async def post_photos(api: Api, user: dict[str, Any], count: int = 2) -> dict[str, Any]:
    files = [(f"{i}.jpg", make.jpeg(80 + i, 60), "image/jpeg") for i in range(count)]
    response = await upload(api, user["headers"], files, caption="mine")
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()
    return post


async def media_rows(system: Any) -> dict[int, Any]:
    database = system.services["media-service"].state.database
    async with database.transaction() as session:
        rows = (await session.execute(select(media_table))).mappings().all()
    return {row["id"]: row for row in rows}


def keys_of(rows: dict[int, Any], media_ids: list[str]) -> list[str]:
    return [v["key"] for m in media_ids for v in rows[int(m)]["variants"].values()]


async def test_a_deleted_posts_media_and_bytes_are_gone_within_5_seconds(
    api: Api, system: Any
) -> None:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    doomed = await post_photos(api, ana)
    kept = await post_photos(api, ana, count=1)
    theirs = await post_photos(api, bob, count=1)
    blobs = system.services["media-service"].state.media.blobs
    media_ids = [m["media_id"] for m in doomed["media"]]
    keys = keys_of(await media_rows(system), media_ids)
    urls = [v["url"] for m in doomed["media"] for v in m["variants"].values()]
    # With an object store behind, the gateway's answer is a redirect to a presigned URL:
    # that URL, handed out before the deletion, must stop working too.
    handed_out = [(await api.client.get(url)) for url in urls]
    presigned = [r.headers["location"] for r in handed_out if r.status_code == 307]
    assert all([await blobs.exists(key) for key in keys])

    deleted = await api.client.delete(f"/api/post/{doomed['post_id']}", headers=ana["headers"])
    assert deleted.status_code == 204

    async def gone() -> bool:
        for media_id in media_ids:
            got = await api.client.get(f"/api/media/{media_id}", headers=bob["headers"])
            assert got.status_code == 404, got.text
        for url in urls:
            assert (await api.client.get(url)).status_code == 404, url
        for key in keys:
            assert not await blobs.exists(key), key
        return True

    await eventually(gone, timeout=5)
    assert_problem(await api.client.get(f"/api/media/{media_ids[0]}", headers=ana["headers"]), 404)
    async with httpx.AsyncClient() as network:
        for url in presigned:
            assert (await network.get(url)).status_code in (403, 404), url
    rows = await media_rows(system)
    assert not set(map(int, media_ids)) & set(rows)
    # Nobody else's media, and none of the author's other posts', were touched.
    for post, owner in ((kept, ana), (theirs, bob)):
        for item in post["media"]:
            got = await api.client.get(f"/api/media/{item['media_id']}", headers=owner["headers"])
            assert got.status_code == 200
            for variant in item["variants"].values():
                assert (await fetch_variant(api, variant["url"])).status_code == 200
    counts = await stored(system)
    assert (counts["media"], counts["blobs"]) == (2, 8)
    # A redelivered event finds nothing left to do.
    service = system.services["media-service"].state.media
    event = PostDeleted(
        post_id=int(doomed["post_id"]),
        author_id=int(ana["id"]),
        media_ids=[int(m) for m in media_ids],
    )
    await service.on_post_deleted(event)
    assert await stored(system) == counts


async def test_an_object_that_cannot_be_deleted_at_first_is_deleted_on_a_retry(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    post = await post_photos(api, ana, count=1)
    [item] = post["media"]
    blobs = system.services["media-service"].state.media.blobs
    keys = keys_of(await media_rows(system), [item["media_id"]])
    real_delete = blobs.delete
    failures: list[str] = []

    async def flaky_delete(key: str) -> None:
        if not failures:
            failures.append(key)
            raise OSError("the object store is not answering")
        await real_delete(key)

    monkeypatch.setattr(blobs, "delete", flaky_delete)
    await api.client.delete(f"/api/post/{post['post_id']}", headers=ana["headers"])

    async def gone() -> bool:
        got = await api.client.get(f"/api/media/{item['media_id']}", headers=ana["headers"])
        assert got.status_code == 404
        for key in keys:
            assert not await blobs.exists(key), key
        # The row goes last, after its objects: wait for it too, not just the objects.
        assert await media_rows(system) == {}
        return True

    await eventually(gone, timeout=5)
    # The store refused once, and the retry deleted that object too.
    assert len(failures) == 1
    assert failures[0] in keys


async def make_orphans(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch, user: dict[str, Any]
) -> list[int]:
    """Two uploads whose media were stored but whose post was not made: post-service failed
    before it began (or was never asked), and its transaction failed. Nothing is undone by
    the gateway or post-service: the media stay pending, for the sweeper."""
    before = set(await media_rows(system))
    posts = system.services["post-service"].state.posts

    async def not_made(*_: Any, **__: Any) -> Any:
        raise RuntimeError("post-service went away")

    with monkeypatch.context() as patch:
        patch.setattr(posts, "create", not_made)
        assert_problem(
            await upload(api, user["headers"], [("p.jpg", make.jpeg(70, 50), "image/jpeg")]), 503
        )

    async def failed_insert(*_: Any, **__: Any) -> None:
        raise RuntimeError("the posts database went away")

    with monkeypatch.context() as patch:
        patch.setattr(post_repository, "insert_post", failed_insert)
        assert_problem(
            await upload(api, user["headers"], [("c.jpg", make.jpeg(50, 70), "image/jpeg")]), 503
        )
    rows = await media_rows(system)
    orphans = sorted(set(rows) - before)
    assert [rows[m]["status"] for m in orphans] == ["pending", "pending"]
    return orphans


async def test_the_sweeper_deletes_orphans_after_their_grace_and_never_a_posts_media(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    live = await post_photos(api, ana, count=1)
    live_media = int(live["media"][0]["media_id"])
    await make_orphans(api, system, monkeypatch, ana)
    service = system.services["media-service"].state.media
    assert service.orphan_grace == timedelta(hours=1)
    assert service.claim_ttl < service.orphan_grace
    with_orphans = await stored(system)
    assert (with_orphans["media"], with_orphans["blobs"]) == (3, 12)
    assert (await media_rows(system))[live_media]["status"] == "pending"

    # Within their grace orphans are left alone (their claim may still make a post).
    assert not any((await service.sweep()).values())
    assert await stored(system) == with_orphans

    counts = await service.sweep(grace=timedelta(0))
    assert counts == {"pending": 2, "attached": 1, "deleting": 0}
    rows = await media_rows(system)
    assert set(rows) == {live_media}
    assert rows[live_media]["status"] == "attached"
    assert rows[live_media]["post_id"] == int(live["post_id"])
    after = await stored(system)
    assert (after["media"], after["blobs"], after["posts"]) == (1, 4, 1)
    for variant in live["media"][0]["variants"].values():
        assert (await fetch_variant(api, variant["url"])).status_code == 200
    # Nothing is left for another round; the live post's media are never looked at again.
    assert not any((await service.sweep(grace=timedelta(0))).values())
    # An attached media row still goes with its post.
    await api.client.delete(f"/api/post/{live['post_id']}", headers=ana["headers"])

    async def gone() -> bool:
        assert await stored(system) == {"media": 0, "posts": 1, "post_media": 1, "blobs": 0}
        return True

    await eventually(gone, timeout=5)


async def test_the_sweeper_deletes_nothing_while_post_service_cannot_answer(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    await post_photos(api, ana, count=1)
    await make_orphans(api, system, monkeypatch, ana)
    service = system.services["media-service"].state.media
    before = await stored(system)

    async def down(*_: Any, **__: Any) -> Any:
        raise OSError("post-service is not answering")

    monkeypatch.setattr(service.posts, "holders", down)
    with pytest.raises(OSError, match="not answering"):
        await service.sweep(grace=timedelta(0))
    assert await stored(system) == before


@pytest.fixture
def system_overrides(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Environment a test gives the system (indirectly parametrized)."""
    for name, value in getattr(request, "param", {}).items():
        monkeypatch.setenv(name, value)
    return {}


@pytest.mark.parametrize(
    "system_overrides",
    [
        {
            "PHOTOGRAM_MEDIA_SWEEP_EVERY_SECONDS": "0.2",
            "PHOTOGRAM_MEDIA_CLAIM_TTL_SECONDS": "2",
            "PHOTOGRAM_MEDIA_ORPHAN_GRACE_SECONDS": "3",
        }
    ],
    indirect=True,
)
async def test_the_sweeper_runs_by_itself_in_the_background(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    live = await post_photos(api, ana, count=1)
    orphans = await make_orphans(api, system, monkeypatch, ana)
    service = system.services["media-service"].state.media

    async def swept() -> bool:
        assert set(await media_rows(system)) == {int(live["media"][0]["media_id"])}
        # The counts are added when a round ends, after its rows are gone: wait for them too
        # (the two orphans may fall in two rounds, the second still finishing).
        assert service.swept.get("attached") == 1
        assert service.swept.get("pending") == len(orphans)
        return True

    await eventually(swept, timeout=30)
    counts = await stored(system)
    assert (counts["media"], counts["blobs"]) == (1, 4)
