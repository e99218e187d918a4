"""The feed under failure: duplicate events, a worker killed mid-fan-out, Redis lost,
inactive readers, and authors crossing the celebrity threshold."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import pytest
from photogram_contracts.events import Envelope
from photogram_contracts.keys import seen_key, timeline_key
from sqlalchemy import select, update

from helpers import Api, eventually, feed_ids, post_photo
from photogram_common.bus import OutgoingMessage
from photogram_common.timelines import member
from photogram_common.timeutil import utcnow


async def follow(api: Api, follower: dict[str, Any], followee: dict[str, Any]) -> None:
    response = await api.client.post(
        f"/api/users/{followee['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 200


async def readers(api: Api, author: dict[str, Any], size: int, prefix: str) -> list[dict[str, Any]]:
    fans = [await api.signup(f"{prefix}{i}") for i in range(size)]
    for fan in fans:
        await follow(api, fan, author)
        await feed_ids(api.client, fan)
    return fans


def timelines(system: Any) -> Any:
    return system.services["feed-service"].state.feed.timelines


async def settle(
    api: Api, system: Any, readers_: list[dict[str, Any]], expected: list[str]
) -> None:
    for reader in readers_:

        async def ok(reader: dict[str, Any] = reader) -> bool:
            return await feed_ids(api.client, reader) == expected

        await eventually(ok, timeout=10)


async def test_each_event_delivered_twice_leaves_feeds_and_counts_unchanged(
    api: Api, system: Any
) -> None:
    ana = await api.signup("ana")
    fans = await readers(api, ana, 3, "fan")
    posts = [await post_photo(api.client, ana) for _ in range(3)]
    await api.client.delete(f"/api/post/{posts[0]}", headers=ana["headers"])
    await api.client.delete(f"/api/users/{ana['id']}/follow", headers=fans[2]["headers"])
    expected = [posts[2], posts[1]]
    await settle(api, system, [ana, fans[0], fans[1]], expected)
    await settle(api, system, [fans[2]], [])
    before = {u["id"]: await feed_ids(api.client, u) for u in (ana, *fans)}
    profile = (await api.client.get("/api/users/me", headers=ana["headers"])).json()

    consumer = system.services["fanout-worker"].state.consumer
    handled: list[Any] = []
    original = consumer.dispatch

    async def counting(envelope: Any) -> None:
        await original(envelope)
        handled.append(envelope.event)

    consumer.dispatch = counting
    replayed = []
    for name in ("user-service", "post-service"):
        database = system.services[name].state.database
        table = system.services[name].state.relay._outbox.table
        async with database.transaction() as session:
            rows = (await session.execute(select(table).order_by(table.c.id))).all()
        replayed += [OutgoingMessage(topic=r.topic, key=r.key, value=r.payload) for r in rows]
    assert len(replayed) >= 7
    await system.bus.publish(replayed)

    async def all_handled() -> bool:
        return len(handled) >= len(replayed)

    await eventually(all_handled, timeout=30)
    await asyncio.sleep(0.5)
    after = {u["id"]: await feed_ids(api.client, u) for u in (ana, *fans)}
    assert after == before
    again = (await api.client.get("/api/users/me", headers=ana["headers"])).json()
    assert (again["posts_count"], again["followers_count"]) == (profile["posts_count"], 2) == (2, 2)
    assert all(Envelope.decode(m.value) is not None for m in replayed)


async def test_a_worker_killed_mid_fan_out_delivers_exactly_once_after_restart(
    api: Api, system: Any
) -> None:
    ana = await api.signup("ana")
    fans = await readers(api, ana, 6, "fan")
    await settle(api, system, fans, [])
    worker = system.services["fanout-worker"].state
    await worker.consumer.stop()
    handlers = worker.handlers
    handlers.page_size = 2
    original_push = handlers.timelines.push
    died = asyncio.Event()

    async def push_then_die(user_ids: list[int], post_id: int) -> int:
        added = await original_push(user_ids, post_id)
        if len(user_ids) == 2 and not died.is_set():
            died.set()
            await asyncio.Event().wait()  # the process dies here, mid fan-out
        return int(added)

    handlers.timelines.push = push_then_die

    async def handle(message: Any) -> None:
        envelope = Envelope.decode(message.value)
        assert envelope is not None
        await handlers.handle(envelope.event)

    crashing = system.bus.consumer(group="fanout-worker", topics=list(_topics()), handler=handle)
    task = asyncio.create_task(crashing.run())
    post = await post_photo(api.client, ana)
    await asyncio.wait_for(died.wait(), timeout=30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    reached = [
        f
        for f in fans
        if await timelines(system).redis.zscore(timeline_key(int(f["id"])), member(int(post)))
    ]
    assert 0 < len(reached) < len(fans)  # it really died part-way

    handlers.timelines.push = original_push
    restarted = system.bus.consumer(group="fanout-worker", topics=list(_topics()), handler=handle)
    task = asyncio.create_task(restarted.run())
    try:
        await settle(api, system, fans, [post])
    finally:
        await restarted.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for fan in fans:
        assert (await feed_ids(api.client, fan)).count(post) == 1


def _topics() -> tuple[str, ...]:
    from photogram_contracts.events import ALL_TOPICS

    return ALL_TOPICS


@pytest.mark.parametrize(
    "system_overrides", [{"celebrity_threshold": 3}, {}], ids=["three", "default"]
)
async def test_feeds_come_back_complete_after_redis_loses_everything(api: Api, system: Any) -> None:
    star = await api.signup("star")
    ana = await api.signup("ana")
    fans = await readers(api, star, 3, "fan")
    for fan in fans:
        await follow(api, fan, ana)
    made = [await post_photo(api.client, author) for author in (star, ana, star, ana)]
    expected = sorted(made, key=int, reverse=True)
    await settle(api, system, fans, expected)
    await timelines(system).redis.flushdb()
    for fan in fans:
        assert await feed_ids(api.client, fan) == expected
    newer = await post_photo(api.client, star)
    await settle(api, system, fans, [newer, *expected])


async def test_an_inactive_reader_is_not_pushed_to_and_is_rebuilt_on_return(
    api: Api, system: Any
) -> None:
    ana = await api.signup("ana")
    active, idle = await readers(api, ana, 2, "fan")
    old = await post_photo(api.client, ana)
    await settle(api, system, [active, idle], [old])
    users = system.services["user-service"].state
    from user_service.models import users as users_table

    async with users.database.transaction() as session:
        await session.execute(
            update(users_table)
            .where(users_table.c.id == int(idle["id"]))
            .values(last_active_at=utcnow() - timedelta(days=30))
        )
    store = timelines(system)
    # Eight days without a read: the timeline has expired and the seen-throttle with it.
    await store.redis.delete(timeline_key(int(idle["id"])), seen_key(int(idle["id"])))
    new = await post_photo(api.client, ana)
    await settle(api, system, [active], [new, old])
    assert not await store.is_built(int(idle["id"]))  # the fan-out skipped the inactive reader
    pages = await asyncio.gather(*(feed_ids(api.client, idle) for _ in range(5)))
    assert pages == [[new, old]] * 5  # rebuilt once; no reader saw an empty or partial page
    assert await store.is_built(int(idle["id"]))


@pytest.mark.parametrize("system_overrides", [{"celebrity_threshold": 3}], ids=["three"])
async def test_crossing_the_threshold_either_way_loses_and_duplicates_nothing(
    api: Api, system: Any
) -> None:
    ana = await api.signup("ana")
    fans = await readers(api, ana, 2, "fan")  # two followers: pushed
    pushed = await post_photo(api.client, ana)
    await settle(api, system, fans, [pushed])
    third = (await readers(api, ana, 1, "late"))[0]  # three followers: now pulled
    everyone = [*fans, third]
    pulled = await post_photo(api.client, ana)
    await settle(api, system, everyone, [pulled, pushed])
    store = timelines(system)
    assert await store.redis.zscore(timeline_key(int(fans[0]["id"])), member(int(pulled))) is None
    await api.client.delete(
        f"/api/users/{ana['id']}/follow", headers=third["headers"]
    )  # back to two
    await settle(api, system, fans, [pulled, pushed])

    async def backfilled() -> bool:
        score = await store.redis.zscore(timeline_key(int(fans[0]["id"])), member(int(pulled)))
        return score is not None

    await eventually(backfilled)  # pushed now that ana is below the threshold again
    pushed_again = await post_photo(api.client, ana)
    await settle(api, system, fans, [pushed_again, pulled, pushed])
    await settle(api, system, [third], [])
