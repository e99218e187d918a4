"""The Redis code paths the contract suites leave out, on a 3-node Redis Cluster.

Run by `make test-redis-cluster` (PHOTOGRAM_TEST_BACKENDS=real with
PHOTOGRAM_REDIS_CLUSTER=true and PHOTOGRAM_REDIS_URL at one node of the cluster that
`scripts/backends.sh redis-cluster start` creates); the timeline store, the page read and
the rate limiter run there too, through their own suites, and the whole system through a
few end-to-end suites.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from photogram_contracts.keys import (
    counts_key,
    followees_key,
    liked_floor_key,
    liked_key,
    pulled_key,
    rate_subject,
    revoked_key,
    timeline_key,
)
from redis.asyncio import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from backends import flush_redis, real_redis
from gateway.ratelimit import RateLimiter
from photogram_common.bus.consumer import is_transient
from photogram_common.engagement_cache import EngagementCache, parse_counts
from photogram_common.follows import FollowSets
from photogram_common.redis import make_redis
from photogram_common.sessions import RevokedSessions
from photogram_common.timelines import SENTINEL


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    await flush_redis()
    client = real_redis(decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_suite_runs_on_a_three_node_cluster_that_keeps_slots_apart(redis: Any) -> None:
    assert isinstance(redis, RedisCluster)
    await redis.initialize()
    primaries = redis.get_primaries()
    assert len(primaries) == 3
    # The readers' keys spread over every node, so the tests below do cross nodes.
    owners = {redis.get_node_from_key(timeline_key(user)).name for user in range(1, 40)}
    assert owners == {node.name for node in primaries}
    # A script over two readers' keys is refused, by the client and by Redis itself.
    first, second = timeline_key(1), timeline_key(2)
    assert key_slot(first.encode()) != key_slot(second.encode())
    with pytest.raises(RedisClusterException):
        await redis.eval("return 1", 2, first, second)
    with pytest.raises(ResponseError, match="hash to the same slot"):
        await redis.execute_command(
            "EVAL", "return 1", 2, first, second, target_nodes=redis.get_node_from_key(first)
        )


async def test_follow_sets_build_change_and_forget_across_nodes(redis: Any) -> None:
    follows = FollowSets(redis, ttl_seconds=3600)
    await follows.build(1, followees=[2, 3, 500], pulled=[500])  # a MULTI on the reader's slot
    assert await follows.followees(1) == [2, 3, 500]
    assert await follows.pulled(1) == [500]
    assert 0 < await redis.ttl(pulled_key(1)) <= 3600
    await follows.follow(1, 600, pulled=True)  # one script over both sets
    await follows.unfollow(1, 2)
    assert await follows.followees(1) == [3, 500, 600]
    assert await follows.pulled(1) == [500, 600]
    assert await follows.followed(1, [1, 3, 4, 600]) == {1, 3, 600}
    # A threshold crossing changes the built sets of many readers, a call per reader's slot.
    readers = list(range(1, 1201))
    for reader in readers[1:5]:
        await follows.build(reader, followees=[700], pulled=[])
    await follows.add_pulled(readers, 700)
    assert [await follows.pulled(r) for r in readers[1:5]] == [[700]] * 4
    assert await follows.pulled(6) is None  # never built, still not built
    await follows.remove_pulled(readers, 700)
    assert [await follows.pulled(r) for r in readers[1:5]] == [[]] * 4
    await follows.forget(1)
    assert await follows.followees(1) is None
    assert not await redis.exists(followees_key(1), pulled_key(1))


async def test_counts_and_liked_sets_on_a_cluster(redis: Any) -> None:
    cache = EngagementCache(redis, counts_ttl_seconds=600, liked_ttl_seconds=3600)
    post = 10**15 + 7
    assert await cache.set_counts(post, version=2, likes=5, comments=1)
    assert not await cache.set_counts(post, version=1, likes=9, comments=9)  # older: kept out
    assert parse_counts(await redis.get(counts_key(post))) == (2, 5, 1)
    others = [post + i for i in range(1, 6)]  # in different slots
    await cache.set_many_counts([(post, 1, 0, 0), *((p, 3, p % 7, 1) for p in others)])
    assert [parse_counts(await redis.get(counts_key(p))) for p in [post, *others]] == [
        (2, 5, 1),
        *((3, p % 7, 1) for p in others),
    ]
    await cache.liked(1, post, liked=True)  # not built: nothing is created
    assert not await redis.exists(liked_key(1))
    await cache.open_liked(1)
    await cache.fill_liked(1, [30, 20, 10], complete=False)  # a MULTI on the reader's slot
    await cache.liked(1, 40, liked=True)
    await cache.liked(1, 20, liked=False)
    assert await redis.smembers(liked_key(1)) == {SENTINEL, "10", "30", "40"}
    assert await redis.get(liked_floor_key(1)) == "10"
    await cache.fill_liked(1, [], complete=True)
    assert not await redis.exists(liked_floor_key(1))
    await cache.forget_liked(1)
    assert not await redis.exists(liked_key(1))


async def test_a_revoked_session_and_the_rate_limit_share_a_call(redis: Any) -> None:
    limiter, user = RateLimiter(redis, window_seconds=60), int(uuid.uuid4().int % 10**12)
    await RevokedSessions(redis, access_token_ttl_seconds=900).mark(user, 2)
    subject = rate_subject(user)
    assert (await limiter.hit(subject, limit=2, revoked_key=revoked_key(user, 1))).allowed
    assert (await limiter.hit(subject, limit=2, revoked_key=revoked_key(user, 2))).revoked
    assert (await limiter.hit(subject, limit=2, revoked_key=revoked_key(user, 1))).allowed
    assert not (await limiter.hit(subject, limit=2, revoked_key=revoked_key(user, 1))).allowed
    assert limiter.stats == {"failed_open": 0, "redis_errors": 0}


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_cluster_that_does_not_answer_is_a_transient_failure() -> None:
    """The cluster client says "no node answers" with RedisClusterException, which is not a
    RedisError: the consumer retries an event that met it, it never dead-letters it."""
    client = make_redis(f"redis://127.0.0.1:{_dead_port()}/0", cluster=True)
    try:
        with pytest.raises(RedisClusterException) as failed:
            await client.set(timeline_key(1), "x")
    finally:
        await client.aclose()
    assert is_transient(failed.value)
