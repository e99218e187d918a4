"""An author flapping at the celebrity threshold crosses it once each way, not on every flap.

user-service keeps whether an author is pulled: set when the follower count reaches the
threshold T, cleared only at T - band or below (band = max(1, T // 10)). At T = 20 the band
is 2: pulled at 20, pushed again at 18; flapping between 19 and 20, or between 18 and 19,
after the first crossing changes nothing. Counted twice: the crossings the follow events
carry (user-service's outbox), and the fanout-worker's writes (the crossing's backfill
pushes, the pulled-set passes).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from photogram_contracts.events import Envelope, FollowCreated, FollowDeleted
from photogram_contracts.keys import timeline_key
from sqlalchemy import select

from helpers import Api, eventually, feed_ids, post_photo
from photogram_common.timelines import member
from user_service.service import next_pulled, pulled_band

THRESHOLD = 20


@pytest.fixture
def system_overrides() -> dict[str, Any]:
    return {"celebrity_threshold": THRESHOLD}


def test_the_band_is_a_tenth_of_the_threshold_and_at_least_one() -> None:
    assert [pulled_band(t) for t in (1, 3, 10, 20, 10_000)] == [1, 1, 1, 2, 1000]
    # T = 3: pulled at three followers, pushed again at two (as the crossing test expects).
    assert next_pulled(3, was=False, threshold=3) is True
    assert next_pulled(2, was=True, threshold=3) is False
    # T = 10,000: once pulled, 9,999 keeps the author pulled; once pushed, it stays pushed.
    assert next_pulled(10_000, was=False, threshold=10_000) is True
    assert next_pulled(9_999, was=True, threshold=10_000) is True
    assert next_pulled(9_999, was=False, threshold=10_000) is False
    assert next_pulled(9_001, was=True, threshold=10_000) is True
    assert next_pulled(9_000, was=True, threshold=10_000) is False


async def follow(api: Api, follower: dict[str, Any], followee: dict[str, Any]) -> None:
    response = await api.client.post(
        f"/api/users/{followee['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 200


async def unfollow(api: Api, follower: dict[str, Any], followee: dict[str, Any]) -> None:
    response = await api.client.delete(
        f"/api/users/{followee['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 204


async def follow_events(system: Any, followee_id: int) -> list[Any]:
    """The follow events user-service wrote about the followee, in commit order."""
    state = system.services["user-service"].state
    table = state.relay._outbox.table
    async with state.database.transaction() as session:
        rows = (await session.execute(select(table).order_by(table.c.id))).all()
    events = [Envelope.decode(row.payload) for row in rows]
    return [
        e.event
        for e in events
        if e is not None
        and isinstance(e.event, FollowCreated | FollowDeleted)
        and e.event.followee_id == followee_id
    ]


async def test_flapping_across_the_threshold_crosses_once_each_way(api: Api, system: Any) -> None:
    star = await api.signup("star")
    star_id = int(star["id"])
    worker = system.services["fanout-worker"].state
    handlers, consumer = worker.handlers, worker.consumer
    pushes: Counter[tuple[int, int]] = Counter()  # (reader, post) -> timeline pushes
    passes: Counter[str] = Counter()  # pulled-set passes over the followers, per direction
    handled: list[Any] = []
    original_push = handlers.timelines.push
    original_add, original_remove = handlers.follows.add_pulled, handlers.follows.remove_pulled
    original_dispatch = consumer.dispatch

    async def counting_push(user_ids: Any, post_id: int) -> int:
        user_ids = list(user_ids)
        pushes.update((u, post_id) for u in user_ids)
        return int(await original_push(user_ids, post_id))

    async def counting_add(reader_ids: Any, author_id: int) -> None:
        passes["up"] += author_id == star_id
        await original_add(reader_ids, author_id)

    async def counting_remove(reader_ids: Any, author_id: int) -> None:
        passes["down"] += author_id == star_id
        await original_remove(reader_ids, author_id)

    async def counting_dispatch(envelope: Any) -> None:
        await original_dispatch(envelope)
        handled.append(envelope.event)

    handlers.timelines.push = counting_push
    handlers.follows.add_pulled = counting_add
    handlers.follows.remove_pulled = counting_remove
    consumer.dispatch = counting_dispatch

    async def all_handled() -> bool:
        written = await follow_events(system, star_id)
        done = [e for e in handled if isinstance(e, FollowCreated | FollowDeleted)]
        return len([e for e in done if e.followee_id == star_id]) >= len(written)

    fans = [await api.signup(f"fan{i}") for i in range(THRESHOLD - 1)]
    for fan in fans:
        await follow(api, fan, star)
        await feed_ids(api.client, fan)  # a built timeline: the fan-out writes to it
    flapper = await api.signup("flapper")
    pushed = await post_photo(api.client, star)  # 19 followers: pushed
    # Across T: 20, 19, 20, 19, 20. Only the first reaches the threshold from below.
    for step in range(5):
        await (follow if step % 2 == 0 else unfollow)(api, flapper, star)
    pulled = await post_photo(api.client, star)  # pulled: in the feeds, in no timeline
    expected = [pulled, pushed]
    for fan in fans[:3]:

        async def merged(fan: dict[str, Any] = fan) -> bool:
            return await feed_ids(api.client, fan) == expected

        await eventually(merged, timeout=15)
    await eventually(all_handled, timeout=15)
    store = handlers.timelines
    first = int(fans[0]["id"])
    assert await store.redis.zscore(timeline_key(first), member(int(pulled))) is None
    assert pushes[(first, int(pulled))] == 0

    # Across T - band: 19, 20, 19, 18, 19, 18, 19, 18. Only 18 from above pushes them again.
    await unfollow(api, flapper, star)
    await follow(api, flapper, star)
    await unfollow(api, flapper, star)
    leaver = fans[-1]
    for step in range(5):
        await (unfollow if step % 2 == 0 else follow)(api, leaver, star)
    await eventually(all_handled, timeout=15)
    stayed = fans[:-1]

    async def backfilled() -> bool:
        return await store.redis.zscore(timeline_key(first), member(int(pulled))) is not None

    await eventually(backfilled, timeout=15)

    events = await follow_events(system, star_id)
    assert len(events) == THRESHOLD - 1 + 5 + 3 + 5
    assert [e.followee_crossed for e in events if e.followee_crossed] == ["up", "down"]
    assert [e.followee_followers_count for e in events if e.followee_crossed] == [20, 18]
    assert events[-1].followee_pulled is False
    assert events[-1].followee_followers_count == 18
    # One pass each way over the followers' pulled sets, and one backfill of the pulled post.
    assert passes == Counter({"up": 1, "down": 1})
    # To each follower at the crossing's time: the leaver may have followed again by then.
    backfill = {u: n for (u, p), n in pushes.items() if p == int(pulled) and u != star_id}
    assert {int(f["id"]) for f in stayed} <= set(backfill) <= {int(f["id"]) for f in fans}
    assert set(backfill.values()) == {1}
    delivery = await system.services["user-service"].state.users.delivery(star_id)
    assert delivery.pulled is False

    # The feeds show each post once, and a post from now on is pushed again.
    newer = await post_photo(api.client, star)
    for fan in (*stayed[:3], star):

        async def complete(fan: dict[str, Any] = fan) -> bool:
            return await feed_ids(api.client, fan) == [newer, *expected]

        await eventually(complete, timeout=15)
    await eventually(all_handled, timeout=15)
    assert pushes[(first, int(newer))] == 1


async def test_a_follow_event_from_before_the_flag_decodes_and_is_read_by_the_old_rule(
    api: Api, system: Any
) -> None:
    star = await api.signup("star")
    fans = [await api.signup(f"fan{i}") for i in range(THRESHOLD)]
    for fan in fans:
        await follow(api, fan, star)
    old = (
        b'{"event_id":"e1","type":"follow.created","version":1,"data":'
        b'{"follower_id":%d,"followee_id":%d,"followee_followers_count":%d}}'
    )
    handlers = system.services["fanout-worker"].state.handlers
    for count, crossed in ((THRESHOLD, "up"), (THRESHOLD + 1, None)):
        envelope = Envelope.decode(old % (int(fans[-1]["id"]), int(star["id"]), count))
        assert envelope is not None
        assert isinstance(envelope.event, FollowCreated)
        assert (envelope.event.followee_pulled, envelope.event.followee_crossed) == (None, None)
        # The flag is asked of user-service; the old rule names the crossing.
        assert await handlers._delivery(envelope.event) == (True, crossed)
