"""Which backends a test run uses, and per-test isolation on each of them.

PHOTOGRAM_TEST_BACKENDS=embedded (the default): SQLite files, the in-process bus, fakeredis,
local disk. PHOTOGRAM_TEST_BACKENDS=real: PostgreSQL, Kafka, Redis and S3 as
`scripts/backends.sh env` prints them. A real backend that cannot be reached fails the
test; it never skips it.

In the real mode PHOTOGRAM_REDIS_CLUSTER=true makes the tests (and the services they
compose) reach PHOTOGRAM_REDIS_URL with the cluster client, as on a Redis Cluster:
`scripts/backends.sh redis-cluster env` prints both (make test-redis-cluster).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODE = os.environ.get("PHOTOGRAM_TEST_BACKENDS", "embedded")
REAL = MODE == "real"
# The real Redis is a Redis Cluster (read as PlatformSettings reads the variable).
REDIS_CLUSTER = REAL and os.environ.get("PHOTOGRAM_REDIS_CLUSTER", "").strip().lower() in {
    "1",
    "true",
    "t",
    "yes",
    "y",
    "on",
}
# pytest-xdist runs the suites in several processes (make test, make test-real). Each test
# has databases, topics and a bucket of its own, but flushes Redis before it starts: on a
# single Redis each worker keeps to a database of its own (gw0 to 0, gw1 to 1, ...). A
# Redis Cluster has database 0 only, so make test-redis-cluster runs in one process.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
if REAL and not REDIS_CLUSTER and WORKER and "PHOTOGRAM_REDIS_URL" in os.environ:
    _base = os.environ["PHOTOGRAM_REDIS_URL"].rsplit("/", 1)[0]
    os.environ["PHOTOGRAM_REDIS_URL"] = f"{_base}/{WORKER}"
# The name of the real Redis adapter in the contract suites' test IDs.
REAL_REDIS = "redis-cluster" if REDIS_CLUSTER else "redis"
SERVICE_DATABASES = ("users", "posts", "media", "notifications")


def require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: with PHOTOGRAM_TEST_BACKENDS=real, run "
            '`eval "$(bash scripts/backends.sh env)"` first'
        )
    return value


REAL_BACKEND_VARIABLES = frozenset(
    {
        *(f"PHOTOGRAM_{s.upper()}_DATABASE_URL" for s in SERVICE_DATABASES),
        "PHOTOGRAM_REDIS_URL",
        "PHOTOGRAM_REDIS_CLUSTER",
        "PHOTOGRAM_KAFKA_BOOTSTRAP",
        "PHOTOGRAM_KAFKA_PREFIX",
        "PHOTOGRAM_S3_ENDPOINT_URL",
        "PHOTOGRAM_S3_BUCKET",
        "PHOTOGRAM_MEDIA_PUBLIC_BASE_URL",
        "PHOTOGRAM_MODE",
    }
)


@dataclass
class TestBackends:
    """Environment for one test: fresh databases, topics, Redis keyspace and bucket."""

    env: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)


async def create_database(name: str) -> str:
    """Create a fresh PostgreSQL database; return its asyncpg URL."""
    import asyncpg

    admin = require("PHOTOGRAM_TEST_PG_ADMIN_URL")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(require("PHOTOGRAM_TEST_PG_ADMIN_URL"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def redis_at(url: str, *, decode_responses: bool = True) -> Any:
    """A client of the Redis at `url`: the cluster client on a Redis Cluster, as the
    services' (photogram_common.redis.make_redis)."""
    import redis.asyncio as aioredis

    from photogram_common.redis import make_redis

    if REDIS_CLUSTER:
        return make_redis(url, cluster=True, decode_responses=decode_responses)
    return aioredis.from_url(url, decode_responses=decode_responses)


def real_redis(*, decode_responses: bool = True) -> Any:
    """A client of the real Redis (PHOTOGRAM_REDIS_URL)."""
    return redis_at(require("PHOTOGRAM_REDIS_URL"), decode_responses=decode_responses)


async def flush_redis() -> None:
    """Empty the real Redis (on a cluster, every primary)."""
    client = real_redis()
    try:
        if REDIS_CLUSTER:
            await client.flushdb(target_nodes=client.PRIMARIES)
        else:
            await client.flushdb()
    finally:
        await client.aclose()


async def drop_bucket(bucket: str) -> None:
    """Delete a test bucket and its objects (SeaweedFS gives each bucket its own volumes)."""
    from photogram_common.blobs import S3BlobStore

    store = S3BlobStore(
        endpoint_url=require("PHOTOGRAM_S3_ENDPOINT_URL"),
        bucket=bucket,
        access_key=require("PHOTOGRAM_S3_ACCESS_KEY"),
        secret_key=require("PHOTOGRAM_S3_SECRET_KEY"),
        region=os.environ.get("PHOTOGRAM_S3_REGION", "us-east-1"),
    )
    await store.open()
    try:
        await store.drop_bucket()
    finally:
        await store.close()


@asynccontextmanager
async def isolated_backends(tmp_path: Path) -> AsyncIterator[TestBackends]:
    """Per-test backends: a data directory always; fresh real resources in the real mode."""
    token = uuid.uuid4().hex[:12]
    backends = TestBackends(env={"PHOTOGRAM_DATA_DIR": str(tmp_path / "data")})
    if not REAL:
        # Nothing from the shell may point an embedded run at a shared real backend.
        backends.unset = [name for name in os.environ if name in REAL_BACKEND_VARIABLES]
        yield backends
        return
    try:
        # Concurrently: PostgreSQL takes ~0.25 s to create each one, most of it waiting.
        names = [f"t_{token}_{service}" for service in SERVICE_DATABASES]
        created = await asyncio.gather(*map(create_database, names), return_exceptions=True)
        for service, name, url in zip(SERVICE_DATABASES, names, created, strict=True):
            if isinstance(url, BaseException):
                continue
            backends.databases.append(name)
            backends.env[f"PHOTOGRAM_{service.upper()}_DATABASE_URL"] = url
        for url in created:
            if isinstance(url, BaseException):
                raise url
        await flush_redis()
        backends.env.update(
            {
                "PHOTOGRAM_REDIS_URL": require("PHOTOGRAM_REDIS_URL"),
                "PHOTOGRAM_REDIS_CLUSTER": "true" if REDIS_CLUSTER else "false",
                "PHOTOGRAM_KAFKA_BOOTSTRAP": require("PHOTOGRAM_KAFKA_BOOTSTRAP"),
                "PHOTOGRAM_KAFKA_PREFIX": f"t{token}.",
                "PHOTOGRAM_KAFKA_PARTITIONS": "2",
                "PHOTOGRAM_S3_ENDPOINT_URL": require("PHOTOGRAM_S3_ENDPOINT_URL"),
                "PHOTOGRAM_S3_BUCKET": f"t-{token}",
                "PHOTOGRAM_S3_ACCESS_KEY": require("PHOTOGRAM_S3_ACCESS_KEY"),
                "PHOTOGRAM_S3_SECRET_KEY": require("PHOTOGRAM_S3_SECRET_KEY"),
                "PHOTOGRAM_S3_REGION": os.environ.get("PHOTOGRAM_S3_REGION", "us-east-1"),
            }
        )
        yield backends
    finally:
        await asyncio.gather(*map(drop_database, backends.databases))
        if "PHOTOGRAM_S3_BUCKET" in backends.env:
            await drop_bucket(backends.env["PHOTOGRAM_S3_BUCKET"])
