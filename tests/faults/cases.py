"""The fault cases. Each one streams uploads, does its fault to a real process, brings the
process back, has every author post once more, and checks delivery from the public API.

A case returns its Delivery plus notes (what was done, as measured); its own extra
conditions go into the Delivery's problems. The order matters only for time: the poison
record goes last, since a partition it stalls would stall every later case too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from netem import clear_impairment, impair
from photogram_contracts.events import POSTS_TOPIC
from photogram_contracts.keys import timeline_key
from stack import KAFKA_PREFIX, SECOND_WORKER, Stack, wait_gone
from workload import DEADLINE, Crowd, Delivery, Uploads, await_delivery, feed, make_crowd

from helpers import Api

SIGSTOP_SECONDS = 42  # past the relay's 10 s send timeout and aiokafka's 40 s request timeout
REDIS_DOWN_SECONDS = 30
BROKER_DOWN_SECONDS = 3


@dataclass
class Context:
    stack: Stack
    api: Api
    tag: str
    notes: list[str] = field(default_factory=list)
    uploads: list[Uploads] = field(default_factory=list)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.api.client

    def stream(self, crowd: Crowd, rate: float = 4.0) -> Uploads:
        uploads = Uploads(self.client, crowd.authors, rate=rate)
        self.uploads.append(uploads)
        uploads.start()
        return uploads

    async def cancel_uploads(self) -> None:
        for uploads in self.uploads:
            await uploads.stop()


Fault = Callable[[Context, Crowd, Uploads], Awaitable[float]]


async def streamed(
    ctx: Context, fault: Fault, *, before: float = 1.5, after: float = 0.0
) -> Delivery:
    """The common shape: a crowd, uploads streaming, the fault (returning the moment of
    recovery), `after` seconds more of uploads and signups, one more post per author, then
    the delivery check."""
    refused: Counter[str] = Counter()
    crowd, _ = await make_crowd(ctx.api, ctx.tag, refused=refused)
    if refused:
        ctx.notes.append(f"signups refused while the crowd was made: {dict(refused)}")
    records = await ctx.stack.topic_records(POSTS_TOPIC)
    uploads = ctx.stream(crowd)
    await asyncio.sleep(before)
    recovered = await fault(ctx, crowd, uploads)
    if after:
        refused = await signups_for(ctx, after)
        ctx.notes.append(f"signups in the {after:.0f} s after recovery refused: {dict(refused)}")
    stopping = asyncio.create_task(uploads.stop())
    await read_once(ctx, crowd)
    await uploads.one_each(recovered + DEADLINE)
    await stopping
    ctx.notes.append(f"failed uploads {uploads.failures()}")
    delivery = await await_delivery(ctx.client, crowd, uploads.acked, recovered)
    await note_records(ctx, records, len(uploads.acked))
    return delivery


async def read_once(ctx: Context, crowd: Crowd) -> None:
    """Every follower reads once after recovery (rebuilding a timeline Redis lost), so the
    posts made next reach them through the fan-out, not through a rebuild."""
    for reader in crowd.followers:
        with contextlib.suppress(httpx.HTTPError):
            await feed(ctx.client, reader)


async def signups_for(ctx: Context, seconds: float) -> Counter[str]:
    """Sign up a user every half second for a while; count what was refused."""
    refused: Counter[str] = Counter()
    until = time.monotonic() + seconds
    n = 0
    while time.monotonic() < until:
        n += 1
        body = {
            "username": f"{ctx.tag}s{n}",
            "email": f"{ctx.tag}s{n}@example.com",
            "password": "correct horse battery",
        }
        try:
            status = str((await ctx.client.post("/api/auth/signup", json=body)).status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        if status != "201":
            refused[status] += 1
        await asyncio.sleep(0.5)
    return refused


async def note_records(ctx: Context, before: int, posts: int) -> None:
    """How many records the posts topic gained per acknowledged post (re-sends show here)."""
    try:
        added = await ctx.stack.topic_records(POSTS_TOPIC) - before
    except Exception as exc:
        ctx.notes.append(f"posts topic not read: {type(exc).__name__}")
        return
    ctx.notes.append(f"posts topic +{added} records for {posts} acknowledged posts")


# ---------------------------------------------------------------------------- the broker


async def broker_kill9(ctx: Context) -> Delivery:
    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        broker = ctx.stack.kafka
        assert broker is not None
        os.kill(broker.pid, signal.SIGKILL)
        await wait_gone(broker.pid, 10)
        broker.wait()
        ctx.notes.append(
            f"broker pid {broker.pid} SIGKILL after {len(uploads.acked)} acks, "
            f"down {BROKER_DOWN_SECONDS} s"
        )
        await asyncio.sleep(BROKER_DOWN_SECONDS)
        started = time.monotonic()
        await ctx.stack.restart_kafka()
        ctx.notes.append(f"broker back in {time.monotonic() - started:.1f} s")
        return time.monotonic()

    return await streamed(ctx, fault)


async def broker_sigstop(ctx: Context) -> Delivery:
    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        broker = ctx.stack.kafka
        assert broker is not None
        os.kill(broker.pid, signal.SIGSTOP)
        ctx.notes.append(f"broker SIGSTOP {SIGSTOP_SECONDS} s")
        try:
            await asyncio.sleep(SIGSTOP_SECONDS)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        return time.monotonic()

    return await streamed(ctx, fault)


async def broker_netem(ctx: Context) -> Delivery:
    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        ctx.notes.append(await impair(200, 5))
        await asyncio.sleep(12)
        acked = set(uploads.acked)
        reached = acked
        for reader in crowd.followers:
            status, ids = await feed(ctx.client, reader)
            reached = reached & set(ids) if status == 200 else set()
        ctx.notes.append(f"{len(reached)}/{len(acked)} delivered while impaired")
        await clear_impairment()
        return time.monotonic()

    return await streamed(ctx, fault, before=1.0)


async def poison_record(ctx: Context) -> Delivery:
    from aiokafka import AIOKafkaProducer

    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        producer = AIOKafkaProducer(bootstrap_servers=ctx.stack.bootstrap)
        await producer.start()
        topic = KAFKA_PREFIX + POSTS_TOPIC
        try:
            # In every author's partition, between their posts: bytes that are no event,
            # an empty value, and JSON that is no envelope.
            for author in crowd.authors:
                key = author["id"].encode()
                await producer.send_and_wait(topic, b"\x00garbage{\xff", key=key)
            await producer.send_and_wait(topic, b"", key=crowd.authors[0]["id"].encode())
            await producer.send_and_wait(topic, b'{"event_id": 1}', key=None)
        finally:
            await producer.stop()
        ctx.notes.append(f"{len(crowd.authors) + 2} poison records on {topic}")
        recovered = time.monotonic()
        await asyncio.sleep(2)
        return recovered

    return await streamed(ctx, fault)


# ---------------------------------------------------------------------------- fan-out workers


async def worker_kill9(ctx: Context) -> Delivery:
    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        redis = ctx.stack.redis()
        own = [timeline_key(int(a["id"])) for a in crowd.authors]
        theirs = [timeline_key(int(f["id"])) for f in crowd.followers]
        authored, followed, caught = 0, [0], False
        try:
            # Kill it the moment a post is in its author's timeline and not yet in every
            # follower's: the fan-out writes the author's first, then reads the follower
            # pages from user-service, then writes theirs. (The authors follow no one and
            # the followers follow every author, so at rest the sums agree.)
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                async with redis.pipeline(transaction=False) as pipe:
                    for key in (*own, *theirs):
                        pipe.zcard(key)
                    sizes = [max(0, n - 1) for n in await pipe.execute()]  # less the sentinel
                authored, followed = sum(sizes[: len(own)]), sizes[len(own) :]
                if authored > min(followed):
                    caught = True
                    break
                await asyncio.sleep(0.002)
        finally:
            await redis.aclose()
        pid = ctx.stack.kill_service("fanout-worker")
        await wait_gone(pid, 10)
        ctx.notes.append(
            f"fanout-worker pid {pid} SIGKILL "
            + (
                f"mid-fan-out (authors' timelines {authored} posts, followers' {followed})"
                if caught
                else "mid-stream (no partial fan-out caught within 8 s)"
            )
        )
        await asyncio.sleep(1)
        await ctx.stack.restart_service("fanout-worker")
        return time.monotonic()

    return await streamed(ctx, fault)


async def second_worker(ctx: Context) -> Delivery:
    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        ctx.stack.start_service(SECOND_WORKER)
        await ctx.stack.wait_service(SECOND_WORKER, 60)
        recovered = time.monotonic()
        await asyncio.sleep(3)  # posts go on streaming while the group rebalances
        ctx.notes.append(f"second fanout-worker joined; group members: {await members(ctx)}")
        return recovered

    return await streamed(ctx, fault)


async def members(ctx: Context) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.stack.bootstrap)
    try:
        await admin.start()
        described: Any = await admin.describe_consumer_groups([KAFKA_PREFIX + "fanout-worker"])
        return str(len(described[0].groups[0][5]))
    except Exception as exc:
        return f"? ({type(exc).__name__})"
    finally:
        await admin.close()


# ---------------------------------------------------------------------------- PostgreSQL, Redis


async def postgres_restart(ctx: Context) -> Delivery:
    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        started = time.monotonic()
        await ctx.stack.restart_postgres()
        ctx.notes.append(
            f"pg_ctl restart -m immediate after {len(uploads.acked)} acks, "
            f"answering again in {time.monotonic() - started:.1f} s"
        )
        return time.monotonic()

    # Writes go on past the services' worker-id lease checks (every 5 s), which find the
    # leases PostgreSQL dropped on restart.
    return await streamed(ctx, fault, after=8)


async def redis_flushall(ctx: Context) -> Delivery:
    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        redis = ctx.stack.redis()
        try:
            keys = await redis.dbsize()
            await redis.flushall()
        finally:
            await redis.aclose()
        ctx.notes.append(f"FLUSHALL ({keys} keys in the timelines' database)")
        recovered = time.monotonic()
        await asyncio.sleep(2)
        return recovered

    return await streamed(ctx, fault)


async def redis_stop(ctx: Context) -> Delivery:
    async def fault(ctx: Context, crowd: Crowd, uploads: Uploads) -> float:
        await ctx.stack.stop_redis()
        ctx.notes.append(f"redis stopped {REDIS_DOWN_SECONDS} s (started again empty)")
        await asyncio.sleep(REDIS_DOWN_SECONDS)
        await ctx.stack.start_redis()
        return time.monotonic()

    return await streamed(ctx, fault)


# ---------------------------------------------------------------------------- timeline rebuilds


async def rebuild_source_down(ctx: Context) -> Delivery:
    """Readers whose timelines are unbuilt read while post-service (the rebuild's source) is
    stopped: a page may fail, but no 200 may miss a post that existed before, then or after."""
    refused: Counter[str] = Counter()
    crowd, cold = await make_crowd(ctx.api, ctx.tag, followers=2, cold=3, refused=refused)
    if refused:
        ctx.notes.append(f"signups refused while the crowd was made: {dict(refused)}")
    uploads = ctx.stream(crowd)
    await asyncio.sleep(2.5)
    await uploads.stop()
    before = set(uploads.acked)
    assert before, "no post acknowledged before the outage"
    statuses: dict[str, int] = {}
    incomplete = 0

    def record(status: int, ids: list[str]) -> None:
        nonlocal incomplete
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 200 and not before <= set(ids):
            incomplete += 1

    await ctx.stack.stop_service("post-service")
    try:
        until = time.monotonic() + 6
        while time.monotonic() < until:
            for reader in cold:
                record(*await feed(ctx.client, reader))
            await asyncio.sleep(0.3)
    finally:
        await ctx.stack.restart_service("post-service")
    recovered = time.monotonic()
    ctx.notes.append(
        f"post-service stopped ~6 s with {len(before)} posts made; unbuilt readers' reads "
        f"during the outage: {statuses}"
    )
    # The first pages after the outage: a rebuild that failed must have left nothing that
    # passes as a built (and empty) timeline.
    for reader in cold:
        while time.monotonic() < recovered + DEADLINE:
            status, ids = await feed(ctx.client, reader)
            record(status, ids)
            if status == 200:
                break
            await asyncio.sleep(0.3)
    await uploads.one_each(recovered + DEADLINE)
    delivery = await await_delivery(ctx.client, crowd, uploads.acked, recovered)
    if incomplete:
        delivery.problems.append(f"{incomplete} pages of 200 missed posts made before the outage")
    ctx.notes.append(f"incomplete 200 pages {incomplete}")
    return delivery


@dataclass(frozen=True)
class Case:
    name: str
    body: Callable[[Context], Awaitable[Delivery]]
    timeout: float


CASES = [
    Case("broker-kill9", broker_kill9, 120),
    Case("broker-sigstop", broker_sigstop, 150),
    Case("worker-kill9", worker_kill9, 110),
    Case("second-worker", second_worker, 110),
    Case("postgres-restart", postgres_restart, 110),
    Case("redis-flushall", redis_flushall, 100),
    Case("redis-stop-30s", redis_stop, 140),
    Case("rebuild-source-down", rebuild_source_down, 120),
    Case("broker-netem", broker_netem, 120),
    Case("poison-record", poison_record, 100),
]
