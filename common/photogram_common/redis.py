"""The timeline store's client: real Redis, or the in-process stand-in in embedded mode."""

from __future__ import annotations

from typing import Any

import fakeredis
import redis.asyncio as aioredis

MAX_CONNECTIONS = 200
POOL_WAIT_SECONDS = 2.0
# A Redis that stopped answering fails a call within these, so callers can degrade.
CONNECT_TIMEOUT_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 2.0


def make_redis(url: str | None, *, cluster: bool = False, decode_responses: bool = True) -> Any:
    """Return an asyncio Redis client for the URL, or an in-process fakeredis when None.

    With `cluster`, a Redis Cluster client: every multi-key operation of ours keeps its
    keys in one slot (hash tags such as `tl2:{42}`). Its pool holds MAX_CONNECTIONS per
    node and does not wait: a call past it fails at once (MaxConnectionsError), so callers
    bound their concurrent calls (TimelineStore, FollowSets).
    Without `decode_responses` replies are bytes (the feed joins cached JSON as bytes).
    """
    if url and cluster:
        return aioredis.RedisCluster.from_url(
            url,
            decode_responses=decode_responses,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            max_connections=MAX_CONNECTIONS,
        )
    if url:
        # A burst past the pool's size waits briefly for a connection instead of failing at
        # once (the plain pool raises "Too many connections", which surfaced as 503s).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            decode_responses=decode_responses,
            health_check_interval=30,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
        )
        return aioredis.Redis(connection_pool=pool)
    # One in-process server per process: every service of the embedded mode shares it.
    return fakeredis.FakeAsyncRedis(server=_embedded_server(), decode_responses=decode_responses)


_SERVER: fakeredis.FakeServer | None = None


def _embedded_server() -> fakeredis.FakeServer:
    global _SERVER
    if _SERVER is None:
        _SERVER = fakeredis.FakeServer()
    return _SERVER
