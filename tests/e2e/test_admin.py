"""photogram-admin on the running system's own stores: counts broken on purpose are found
and fixed, a deleted timeline is rebuilt, a dead letter is listed and replayed, orphan
media are swept and held ones kept, and the outboxes' status is shown."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from photogram_contracts.events import POSTS_TOPIC
from photogram_contracts.keys import timeline_key
from sqlalchemy import select, update

import imagefactory as make
from backends import REAL
from helpers import Api, eventually, feed_ids, post_photo
from media_helpers import upload
from media_service.models import media as media_table
from photogram_admin.cli import main
from photogram_admin.counts import reconcile_counts
from photogram_admin.feeds import rebuild_feeds
from photogram_admin.media import preview_sweep, sweep_media
from photogram_admin.sources import DatabasePostCatalog
from photogram_admin.status import embedded_lag, outbox_status
from photogram_common.bus import OutgoingMessage
from photogram_common.deadletters import dead_letters, replay
from photogram_common.settings import PlatformSettings
from post_service.models import outbox as posts_outbox
from user_service.models import users


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOGRAM_CONSUMER_ATTEMPTS", "2")
    monkeypatch.setenv("PHOTOGRAM_CONSUMER_BACKOFF_SECONDS", "0.01")


def database(system: Any, service: str) -> Any:
    return system.services[service].state.database


async def followers_count(system: Any, user_id: int) -> int:
    async with database(system, "user-service").transaction() as session:
        return int(
            await session.scalar(select(users.c.followers_count).where(users.c.id == user_id))
        )


async def ana_followed_by_bob(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    ana = await api.signup("ana")
    bob = await api.signup("bob")
    response = await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    assert response.status_code == 200
    return ana, bob


async def test_a_count_broken_on_purpose_is_reported_and_fixed_and_a_dry_run_changes_nothing(
    api: Api, system: Any
) -> None:
    ana, _ = await ana_followed_by_bob(api)
    ana_id = int(ana["id"])
    async with database(system, "user-service").transaction() as session:
        await session.execute(update(users).where(users.c.id == ana_id).values(followers_count=99))
    stores = {
        "users_db": database(system, "user-service"),
        "posts_db": database(system, "post-service"),
    }
    seen: list[str] = []

    found = await reconcile_counts(
        **stores, dry_run=True, report=lambda m: seen.append(m.describe())
    )
    assert [(m.row_id, m.column, m.stored, m.actual, m.fixed) for m in found] == [
        (ana_id, "followers_count", 99, 1, False)
    ]
    assert seen == [f"users {ana_id} followers_count: 99 -> 1 (not fixed)"]
    assert await followers_count(system, ana_id) == 99

    found = await reconcile_counts(**stores)
    assert [(m.row_id, m.column, m.fixed) for m in found] == [(ana_id, "followers_count", True)]
    assert await followers_count(system, ana_id) == 1
    assert await reconcile_counts(**stores) == []  # nothing left: a second run is a no-op


async def test_the_command_line_reconciles_the_stores_the_settings_name(
    api: Api, system: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ana, _ = await ana_followed_by_bob(api)
    async with database(system, "user-service").transaction() as session:
        await session.execute(
            update(users).where(users.c.id == int(ana["id"])).values(following_count=7)
        )
    assert await asyncio.to_thread(main, ["reconcile-counts"]) == 0
    out = capsys.readouterr().out
    assert f"users {ana['id']} following_count: 7 -> 0 (fixed)" in out
    assert "1 mismatch(es), 1 fixed" in out


async def test_a_deleted_timeline_is_rebuilt_with_the_right_posts(api: Api, system: Any) -> None:
    ana, bob = await ana_followed_by_bob(api)
    first = await post_photo(api.client, ana)
    second = await post_photo(api.client, ana)

    async def delivered() -> bool:
        return await feed_ids(api.client, bob) == [second, first]

    await eventually(delivered, timeout=30)
    feed = system.services["feed-service"].state.feed
    await feed.timelines.redis.delete(timeline_key(int(bob["id"])))
    assert not await feed.timelines.is_built(int(bob["id"]))

    checked = await rebuild_feeds(feed, [int(bob["id"])], total=1, dry_run=True)
    assert (checked.built_before, await feed.timelines.is_built(int(bob["id"]))) == (0, False)
    report = await rebuild_feeds(feed, [int(ana["id"]), int(bob["id"])], total=2, concurrency=2)
    assert (report.rebuilt, report.busy, report.failed) == (2, 0, [])
    page = await feed.timelines.page(int(bob["id"]), before=None, limit=10)
    assert page == [int(second), int(first)]
    assert await feed_ids(api.client, bob) == [second, first]


async def test_a_dead_letter_is_listed_and_replayed(api: Api, system: Any) -> None:
    ana, _ = await ana_followed_by_bob(api)
    garbage = OutgoingMessage(POSTS_TOPIC, key=str(ana["id"]), value=b"\x00garbage{")
    await system.bus.publish([garbage])

    async def listed() -> Any:
        return await dead_letters(system.bus, group="fanout-worker")

    (letter,) = await eventually(listed, timeout=30)
    assert (letter.topic, letter.value, letter.reason) == (
        POSTS_TOPIC,
        garbage.value,
        "undecodable",
    )
    assert letter.at is not None
    assert await replay(system.bus, at={(letter.at[0], letter.at[1] + 10_000)}) == []
    (replayed,) = await replay(system.bus, group="fanout-worker", at={letter.at})
    assert replayed.at == letter.at

    async def failed_again() -> Any:
        # The replayed record is given up once more: a new dead letter, the old one done.
        again = await dead_letters(system.bus, group="fanout-worker")
        return again if again and again[0].at != letter.at else None

    (again,) = await eventually(failed_again, timeout=30)
    assert again.value == garbage.value


async def test_orphan_media_are_swept_and_a_posts_media_kept(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    live = await post_photo(api.client, ana)
    posts = system.services["post-service"].state.posts

    async def not_made(*_: Any, **__: Any) -> Any:
        raise RuntimeError("post-service went away")

    with monkeypatch.context() as patch:
        patch.setattr(posts, "create", not_made)
        response = await upload(api, ana["headers"], [("p.jpg", make.jpeg(70, 50), "image/jpeg")])
        assert response.status_code == 503
    service = system.services["media-service"].state.media
    catalog = DatabasePostCatalog(database(system, "post-service"))

    preview = await preview_sweep(service, catalog, grace=timedelta(hours=1))
    assert (preview.orphans, preview.held) == (0, 0)  # within the grace
    preview = await preview_sweep(service, catalog, grace=timedelta(0))
    assert (preview.orphans, preview.held, preview.deleting) == (1, 1, 0)
    assert len(await media_rows(system)) == 2  # the dry run deleted nothing

    counts = await sweep_media(service, grace=timedelta(0))
    assert (counts["pending"], counts["attached"]) == (1, 1)
    (kept,) = (await media_rows(system)).values()
    assert (kept["status"], kept["post_id"]) == ("attached", int(live))
    assert not any((await sweep_media(service, grace=timedelta(0))).values())


async def media_rows(system: Any) -> dict[int, Any]:
    async with database(system, "media-service").transaction() as session:
        rows = (await session.execute(select(media_table))).mappings().all()
    return {row["id"]: row for row in rows}


async def test_status_shows_the_outboxes_and_the_groups(api: Api, system: Any) -> None:
    ana = await api.signup("ana")
    await post_photo(api.client, ana)

    async def drained() -> Any:
        found = await outbox_status(
            "post-service", database(system, "post-service"), posts_outbox, bus=system.bus
        )
        return found if found.unsent == 0 else None

    found = await eventually(drained, timeout=30)
    assert (found.service, found.oldest_seconds) == ("post-service", 0.0)
    if REAL:
        return
    bus_file = PlatformSettings().data_dir / "bus.db"  # the fixture's PHOTOGRAM_DATA_DIR

    async def groups() -> Any:
        lags = embedded_lag(bus_file)
        return {lag.group for lag in lags if lag.topic == POSTS_TOPIC} >= {
            "fanout-worker",
            "user-service-post-counter",
        }

    await eventually(groups, timeout=30)
