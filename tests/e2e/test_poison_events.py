"""Poison events through the whole system: a garbage record or an event no retry can help
stops neither the fan-out nor the post counter; each group dead-letters it and moves on."""

from __future__ import annotations

from typing import Any

import pytest
from photogram_contracts.events import POSTS_TOPIC, Envelope, PostCreated

from helpers import Api, eventually, feed_ids, post_photo
from photogram_common.bus import OutgoingMessage
from photogram_common.deadletters import dead_letters

FANOUT = "fanout-worker"
COUNTER = "user-service-post-counter"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOGRAM_CONSUMER_ATTEMPTS", "3")
    monkeypatch.setenv("PHOTOGRAM_CONSUMER_BACKOFF_SECONDS", "0.01")


async def author_and_fan(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    ana = await api.signup("ana")
    fan = await api.signup("fan")
    response = await api.client.post(f"/api/users/{ana['id']}/follow", headers=fan["headers"])
    assert response.status_code == 200
    assert await feed_ids(api.client, fan) == []  # the fan's timeline is built
    return ana, fan


async def delivered(api: Api, ana: dict[str, Any], fan: dict[str, Any], post: str) -> None:
    """The post reached the fan's timeline (fan-out) and ana's posts_count (the counter)."""

    async def in_feed() -> bool:
        return await feed_ids(api.client, fan) == [post]

    async def counted() -> bool:
        me = (await api.client.get("/api/users/me", headers=ana["headers"])).json()
        return bool(me["posts_count"] == 1)

    await eventually(in_feed, timeout=30)
    await eventually(counted, timeout=30)


async def letters_of(system: Any, group: str, n: int = 1) -> Any:
    async def found() -> Any:
        letters = await dead_letters(system.bus, group=group)
        return letters if len(letters) >= n else None

    return await eventually(found, timeout=30)


async def test_a_garbage_record_on_the_posts_topic_stops_no_one(api: Api, system: Any) -> None:
    ana, fan = await author_and_fan(api)
    # In ana's partition, ahead of her post.
    garbage = OutgoingMessage(POSTS_TOPIC, key=str(ana["id"]), value=b"\x00garbage{")
    await system.bus.publish([garbage])
    post = await post_photo(api.client, ana)
    await delivered(api, ana, fan, post)
    for group in (FANOUT, COUNTER):
        (letter,) = await letters_of(system, group)
        assert (letter.topic, letter.key, letter.value) == (
            POSTS_TOPIC,
            str(ana["id"]),
            garbage.value,
        )
        assert letter.reason == "undecodable"
    assert system.services[FANOUT].state.consumer.stats["dead_lettered"] == 1
    assert system.services["user-service"].state.post_counter.stats["dead_lettered"] == 1


async def test_an_event_whose_author_does_not_exist_is_dead_lettered_not_retried_forever(
    api: Api, system: Any
) -> None:
    ana, fan = await author_and_fan(api)
    ghost = PostCreated(post_id=12345, author_id=987654321)  # user-service answers 404
    await system.bus.publish(
        [OutgoingMessage(POSTS_TOPIC, key=str(ana["id"]), value=Envelope.wrap(ghost).encode())]
    )
    post = await post_photo(api.client, ana)
    await delivered(api, ana, fan, post)
    (letter,) = await letters_of(system, FANOUT)
    assert (letter.reason, letter.attempts) == ("permanent", 3)
    assert letter.error.startswith("Problem")
    assert Envelope.decode(letter.value) is not None
    # The counter had nothing to fail on: an unknown author's count is simply not there.
    assert await dead_letters(system.bus, group=COUNTER) == []
