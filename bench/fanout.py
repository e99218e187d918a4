# ruff: noqa: ASYNC220, ASYNC221, ASYNC240, S603 (a bench: local processes, run once, by hand)
"""Fan-out benchmark: timeline inserts per second on real Redis (and PostgreSQL for paging).

(i)  One post to 10,000 built timelines of 800 entries (so every insert also trims), run
     twice in the same process: with the timelines encoded as **listpacks** (what
     `zset-max-listpack-entries 1024` keeps them as) and as **skiplists** (what Redis's
     default, 128, makes of them). Rows, for each encoding:
     - baseline: the naive fan-out, one round trip per follower (ZADD, then
       ZREMRANGEBYRANK to the cap, as Stream-Framework 1.4.0 does);
     - the previous `TimelineStore.push`: one add-if-built script call per follower,
       pipelined in chunks of 200 (copied here as it was);
     - `TimelineStore.push` now: one script call per CHUNK followers carrying all their
       keys, IN_FLIGHT calls at a time, with exact trimming (slack 0) and with the
       default lazy trimming (trim once a timeline exceeds cap + cap // 50);
     - the full path, before and now: page the 10,000 active followers out of PostgreSQL
       with user-service's `repository.active_follower_ids` (pages of 1,000, and of
       `--big-page`, 5,000 by default, what the worker asks for) and push; now with
       `push_pages`, which reads the next page while one is written;
     - "as it was": `push` and the full path on the lists' earlier layout (oldest first:
       an insert appended at the end, a trim cutting the head) with the paging statement
       built per page in a transaction, against the same rows on the newest-first lists.
     - at `--other-cap` (400 by default, Pixelfed's cap; 0: none): `push` and the full
       path on the same followers' timelines kept at that cap (under keys of their own),
       with that cap's memory per timeline.
     The naive and "previous" rows run on the oldest-first lists too (their own layout);
     both layouts are built side by side, under their own keys.
     The rows are measured in `--rounds` interleaved rounds, a block of `--block` posts
     per row per round (a lazily trimmed row's block is slack + 1 posts, so each timeline
     is trimmed once within it; the naive row's is one post). Each row reports the median
     over the rounds of inserts/s (and the best), Redis's main-thread CPU per insert
     (INFO cpu: everything the server does, parsing and replies included), the bench
     process's own CPU per insert (the worker's share; the paging's too on full paths),
     PostgreSQL's (its backends serving the bench's database, from /proc) and the command
     time per insert and per call (INFO commandstats, top-level commands only: a script's
     time includes the commands it runs; wall time inside Redis, so it grows when the
     machine is busy, unlike the CPU figure). Memory per timeline is
     `MEMORY USAGE key SAMPLES 0` at 800 posts and at 800 + slack, for each encoding.
     A sweep of CHUNK and IN_FLIGHT on each encoding shows where those two are set, with
     how long one call holds Redis.
(ii) A stream of posts over a power-law follower graph: authors whose follower counts follow
     a Zipf law over a pool of users, each author posting in turn; authors at or above the
     celebrity threshold are skipped (pulled at read time). Run by worker processes that
     split the stream by author as Kafka's partitions would (8 partitions, a worker owns
     every n-th): the previous push with one worker (baseline), the current push with one
     and with two workers. Reports posts/s and inserts/s over the wall time of the slowest
     worker.

Redis: a redis-server of the bench's own on loopback, started with the flags of
`scripts/backends.sh` (no persistence, `zset-max-listpack-entries 1024`) and stopped at the
end, so its CPU and command counters see the bench's commands only; `--shared-redis` uses
database 5 of the local Redis instead (FLUSHDB before and after; its counters are
server-wide). PostgreSQL: a database of its own (`photogram_bench_fanout`, made with
user-service's migrations, dropped at the end).

    uv run python bench/fanout.py [--followers 10000] [--rounds 3] [--authors 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import PG_ADMIN, REDIS_BASE, REPO, machine, percentile, pg_url, revision, today
from photogram_contracts.keys import timeline_key

import photogram_common.timelines as timelines
from photogram_common.db import Database
from photogram_common.ids import IdGenerator, id_to_unix_ms
from photogram_common.timelines import SENTINEL, TimelineStore, member, score

REDIS_DB = 5
LISTPACK_ENTRIES = 1024  # as scripts/backends.sh, docker-compose.yml and k8s/ set it
PG_DB = "photogram_bench_fanout"
CAP = 800
PARTITIONS = 8
SWEEP = ((64, 2), (256, 1), (256, 2), (1000, 2), (256, 4))  # (CHUNK, IN_FLIGHT)

# The add-if-built script and chunking of TimelineStore.push before this bench's change
# (commit fee4407), kept here as the same-run baseline.
PREVIOUS_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local extra = redis.call('ZCARD', KEYS[1]) - 1 - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 1, extra) end
return 1
"""
PREVIOUS_CHUNK = 200

# The lists as they were before the newest-first layout (commit 6a1028c): scores the
# posts' milliseconds, so oldest first, the sentinel at rank 0, the newest post appended
# at the end; keyed `tl:{id}`. The baseline rows and the "as it was" rows run on these.
OLDEST_FIRST_ADD = """
local unpack = unpack or table.unpack
local cap = tonumber(ARGV[1])
local limit = cap + tonumber(ARGV[2])
local built = 0
for i = 1, #KEYS do
  local n = redis.call('ZCARD', KEYS[i])
  if n > 0 then
    built = built + 1
    n = n + redis.call('ZADD', KEYS[i], unpack(ARGV, 3))
    if n - 1 > limit then redis.call('ZREMRANGEBYRANK', KEYS[i], 1, n - 1 - cap) end
  end
end
return built
"""


def oldest_first_key(user_id: int) -> str:
    return f"tl:{{{user_id}}}"


def other_cap_key(user_id: int) -> str:
    """The same followers' timelines at `--other-cap`, beside the ones at CAP."""
    return f"tlcap:{{{user_id}}}"


class OtherCap(TimelineStore):
    """`TimelineStore.push` as it is, on the timelines kept at another cap."""

    async def push(self, user_ids: Any, post_id: int) -> int:
        keys = [other_cap_key(u) for u in user_ids]
        return await self._each_built(
            keys, [score(post_id), member(post_id)], self.cap, self.trim_slack
        )


class OldestFirst(TimelineStore):
    """`TimelineStore.push` (chunks, lazy trim) on the oldest-first lists, as it was."""

    def __init__(self, redis: Any, **kwargs: Any) -> None:
        super().__init__(redis, **kwargs)
        self._add_if_built = redis.register_script(OLDEST_FIRST_ADD)

    async def push(self, user_ids: Any, post_id: int) -> int:
        keys = [oldest_first_key(u) for u in user_ids]
        pair = [id_to_unix_ms(post_id), member(post_id)]
        return await self._each_built(keys, pair, self.cap, self.trim_slack)


async def previous_push(redis: Any, script: Any, user_ids: Sequence[int], post_id: int) -> int:
    """TimelineStore.push as it was: one script call per follower, pipelined by 200."""
    ms, name = id_to_unix_ms(post_id), member(post_id)
    added = 0
    for start in range(0, len(user_ids), PREVIOUS_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for uid in user_ids[start : start + PREVIOUS_CHUNK]:
                await script(keys=[oldest_first_key(uid)], args=[ms, name, CAP], client=pipe)
            added += sum(int(r) for r in await pipe.execute())
    return added


async def build_timelines(
    redis: aioredis.Redis,
    user_ids: Sequence[int],
    entries: int,
    gen: IdGenerator,
    *,
    skiplist: bool = False,
    oldest_first: bool = False,
    key: Callable[[int], str] = timeline_key,
) -> None:
    """Build each timeline (sentinel + `entries` older posts), as a reader's rebuild leaves it
    (`oldest_first`: in the layout as it was, under its keys; `key`: under other keys).

    One template is built, then COPYed: inserting 800 members one by one into each
    listpack would cost Redis O(n^2) per key and dominate the set-up. For skiplists, a
    member longer than zset-max-listpack-value (64 bytes) converts the template, which a
    zset never converts back from; it is removed again before the copies.
    """
    template = "bench:template"
    await redis.delete(template)
    # Older posts a second apart, as a timeline holds them (posts sharing a millisecond
    # are the exception; the trim's slow path is for them).
    start_ms = int(time.time() * 1000) - entries * 1000 - 60_000
    spaced = iter(range(start_ms, start_ms + entries * 1000, 1000))
    old_gen = IdGenerator(gen.worker_id, clock=lambda: next(spaced))
    old = [old_gen.next_id() for _ in range(entries)]
    await redis.zadd(template, {SENTINEL: 0})
    if skiplist:
        await redis.zadd(template, {SENTINEL + "x" * 64: 0})
    for start in range(0, len(old), 100):
        part = old[start : start + 100]
        scores = {member(p): id_to_unix_ms(p) if oldest_first else score(p) for p in part}
        await redis.zadd(template, scores)
    if skiplist:
        await redis.zrem(template, SENTINEL + "x" * 64)
    for start in range(0, len(user_ids), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for uid in user_ids[start : start + 1000]:
                name = oldest_first_key(uid) if oldest_first else key(uid)
                pipe.copy(template, name, replace=True)
            await pipe.execute()
    await redis.delete(template)


async def redis_counters(redis: aioredis.Redis) -> tuple[float, dict[str, tuple[int, int]]]:
    """Main-thread CPU seconds (INFO cpu) and (calls, usec) per command (INFO commandstats)."""
    cpu = await redis.info("cpu")
    stats = await redis.info("commandstats")
    usec = {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in stats.items()}
    return cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"], usec


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


TOP_LEVEL = {
    "naive": ("zadd", "zremrangebyrank"),
    "script": ("evalsha", "eval"),
}


@contextmanager
def own_redis() -> Iterator[str]:
    """A throwaway redis-server on loopback, configured as scripts/backends.sh does."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing (scripts/backends.sh installs it), or --shared-redis")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="fanout-redis-") as workdir:
        proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--zset-max-listpack-entries",
                str(LISTPACK_ENTRIES),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------- (i) one post


async def pg_follow_graph(followers: int, gen: IdGenerator) -> tuple[int, list[int]]:
    """A fresh user-service database with one author and `followers` active followers."""
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {PG_DB}")
    await admin.close()
    env = dict(os.environ, PHOTOGRAM_USERS_DATABASE_URL=pg_url(PG_DB, driver="asyncpg"))
    env.pop("PHOTOGRAM_MODE", None)
    subprocess.run(
        [sys.executable, "-m", "user_service", "migrate"],
        env=env,
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    conn = await asyncpg.connect(pg_url(PG_DB))
    now = dt.datetime.now(dt.UTC)
    author = gen.next_id()
    # Some inactive users too, so the activity filter has something to filter out.
    ids = [gen.next_id() for _ in range(followers + followers // 4)]
    active = ids[:followers]
    rows = [(author, "author", "author@example.com", "author@example.com", "x", now, now, 0, 0, 0)]
    for i, uid in enumerate(ids):
        seen = now if i < followers else now - dt.timedelta(days=30)
        rows.append(
            (uid, f"u{i}", f"u{i}@example.com", f"u{i}@example.com", "x", now, seen, 0, 1, 0)
        )
    await conn.copy_records_to_table(
        "users",
        records=rows,
        columns=[
            "id",
            "username",
            "email",
            "email_normalized",
            "password_hash",
            "created_at",
            "last_active_at",
            "followers_count",
            "following_count",
            "posts_count",
        ],
    )
    await conn.copy_records_to_table(
        "follows",
        records=[(uid, author, gen.next_id(), now) for uid in ids],
        columns=["follower_id", "followee_id", "id", "created_at"],
    )
    await conn.execute("UPDATE users SET followers_count = $1 WHERE id = $2", len(ids), author)
    await conn.execute("ANALYZE")
    await conn.close()
    return author, sorted(active)


async def previous_active_follower_ids(
    session: Any, *, user_id: int, active_since: dt.datetime, after: int, limit: int
) -> list[int]:
    """user-service's paging query as it was before 2026-12-01 15:40: the statement built
    (and its cache key computed) for every page, in a transaction of its own."""
    from sqlalchemy import and_, func, select
    from sqlalchemy.dialects.postgresql import aggregate_order_by

    from user_service.models import follows, users

    query = (
        select(follows.c.follower_id)
        .join(users, users.c.id == follows.c.follower_id)
        .where(
            and_(
                follows.c.followee_id == user_id,
                follows.c.follower_id > after,
                users.c.last_active_at >= active_since,
            )
        )
        .order_by(follows.c.follower_id)
        .limit(limit)
    )
    page = query.subquery()
    ids = await session.scalar(
        select(func.array_agg(aggregate_order_by(page.c.follower_id, page.c.follower_id)))
    )
    return list(ids or ())


async def follower_pages(
    database: Database, author: int, page_size: int, *, previous: bool = False
) -> AsyncIterator[list[int]]:
    """What user-service's /internal/users/{id}/active-followers serves, page after page
    (`previous`: with the paging query as it was)."""
    from user_service import repository as repo

    query = previous_active_follower_ids if previous else repo.active_follower_ids
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    after = 0
    while True:
        # As user-service runs it now, and as it did (a transaction around the statement).
        opened = database.transaction() if previous else database.single_statement()
        async with opened as session:
            page = await query(
                session, user_id=author, active_since=since, after=after, limit=page_size
            )
        if page:
            yield page
        if len(page) < page_size:
            return
        after = page[-1]


async def all_followers(database: Database, author: int, page_size: int) -> list[int]:
    return [uid async for page in follower_pages(database, author, page_size) for uid in page]


@dataclass
class Row:
    """One row of (i): a push function, measured in blocks of `block` posts per round."""

    encoding: str
    name: str
    fn: Callable[[int], Awaitable[int]]
    block: int
    top_level: str = "script"
    chunk: int | None = None  # the sweep's CHUNK and IN_FLIGHT, else the module's
    in_flight: int | None = None
    blocks: list[dict[str, float]] = field(default_factory=list)

    async def measure(
        self,
        redis: aioredis.Redis,
        gen: IdGenerator,
        n: int,
        pg_cpu: Callable[[], Awaitable[float]],
    ) -> None:
        saved = timelines.CHUNK, timelines.IN_FLIGHT
        timelines.CHUNK = self.chunk or saved[0]
        timelines.IN_FLIGHT = self.in_flight or saved[1]
        try:
            cpu0, stats0 = await redis_counters(redis)
            pg0 = await pg_cpu()
            elapsed = client = 0.0
            for _ in range(self.block):
                post = gen.next_id()
                c0, t0 = time.process_time(), time.perf_counter()
                added = await self.fn(post)
                elapsed += time.perf_counter() - t0
                client += time.process_time() - c0
                assert added == n, (self.name, added)
            cpu1, stats1 = await redis_counters(redis)
            pg1 = await pg_cpu()
        finally:
            timelines.CHUNK, timelines.IN_FLIGHT = saved
        calls = usec = 0
        for command in TOP_LEVEL[self.top_level]:
            calls += stats1.get(command, (0, 0))[0] - stats0.get(command, (0, 0))[0]
            usec += stats1.get(command, (0, 0))[1] - stats0.get(command, (0, 0))[1]
        inserts = n * self.block
        self.blocks.append(
            {
                "inserts_per_s": inserts / elapsed,
                "redis_cpu_us_per_insert": (cpu1 - cpu0) * 1e6 / inserts,
                # This process's CPU (the worker's share: paging included on full paths).
                "client_cpu_us_per_insert": client * 1e6 / inserts,
                # The CPU of PostgreSQL's backends serving the paging (full paths only).
                "postgres_cpu_us_per_insert": (pg1 - pg0) * 1e6 / inserts,
                "command_us_per_insert": usec / inserts,
                # How long one call holds Redis (other clients wait meanwhile).
                "command_ms_per_call": usec / calls / 1000,
            }
        )

    def summary(self) -> dict[str, Any]:
        def median(key: str) -> float:
            return percentile([b[key] for b in self.blocks], 50)

        return {
            "encoding": self.encoding,
            "row": self.name,
            "block": self.block,
            "rounds": len(self.blocks),
            "inserts_per_s": median("inserts_per_s"),
            "inserts_per_s_best": max(b["inserts_per_s"] for b in self.blocks),
            "redis_cpu_us_per_insert": median("redis_cpu_us_per_insert"),
            "client_cpu_us_per_insert": median("client_cpu_us_per_insert"),
            "postgres_cpu_us_per_insert": median("postgres_cpu_us_per_insert"),
            "command_us_per_insert": median("command_us_per_insert"),
            "command_ms_per_call": median("command_ms_per_call"),
            "blocks": self.blocks,
        }


async def memory_of(redis: aioredis.Redis, key: str) -> dict[str, Any]:
    return {
        "encoding": await redis.object("encoding", key),
        "members": await redis.zcard(key),
        "memory_usage": await redis.memory_usage(key, samples=0),
    }


async def one_post(args: argparse.Namespace, redis: aioredis.Redis, gen: IdGenerator) -> dict:
    n = args.followers
    author, user_ids = await pg_follow_graph(n, gen)
    database = Database(pg_url(PG_DB, driver="asyncpg"), pool_size=2)
    admin = await asyncpg.connect(PG_ADMIN)

    async def pg_cpu() -> float:
        """CPU seconds of the PostgreSQL backends connected to the bench's database."""
        pids = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", PG_DB)
        return sum(process_cpu(row["pid"]) for row in pids)

    assert await all_followers(database, author, 1000) == user_ids
    paging: list[float] = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        await all_followers(database, author, 1000)
        paging.append(time.perf_counter() - t0)
    print(
        f"[fanout] paging {n} active followers from PostgreSQL: "
        f"median {percentile(paging, 50) * 1000:.0f} ms",
        flush=True,
    )
    exact = TimelineStore(redis, cap=CAP, trim_slack=0)
    lazy = TimelineStore(redis, cap=CAP)
    as_it_was = OldestFirst(redis, cap=CAP)
    previous = redis.register_script(PREVIOUS_SCRIPT)
    memory: dict[str, Any] = {}
    summaries: list[dict[str, Any]] = []

    async def previous_full(post: int) -> int:
        ids = await all_followers(database, author, 1000)
        return await previous_push(redis, previous, ids, post)

    async def current_full(post: int) -> int:
        return await lazy.push_pages(follower_pages(database, author, 1000), post)

    async def full_as_it_was(post: int) -> int:
        pages = follower_pages(database, author, 1000, previous=True)
        return await as_it_was.push_pages(pages, post)

    async def push_as_it_was(post: int) -> int:
        return await as_it_was.push(user_ids, post)

    async def current_full_big_pages(post: int) -> int:
        return await lazy.push_pages(follower_pages(database, author, args.big_page), post)

    async def naive(post: int) -> int:
        return await naive_push(redis, user_ids, post)

    async def previous_only(post: int) -> int:
        return await previous_push(redis, previous, user_ids, post)

    async def exact_push(post: int) -> int:
        return await exact.push(user_ids, post)

    async def lazy_push(post: int) -> int:
        return await lazy.push(user_ids, post)

    other = OtherCap(redis, cap=args.other_cap or CAP)

    async def other_cap_full(post: int) -> int:
        return await other.push_pages(follower_pages(database, author, args.big_page), post)

    async def other_cap_push(post: int) -> int:
        return await other.push(user_ids, post)

    slack = lazy.trim_slack
    for encoding in ("listpack", "skiplist"):
        await redis.flushdb()
        t = time.perf_counter()
        for oldest_first in (False, True):
            await build_timelines(
                redis,
                user_ids,
                CAP,
                gen,
                skiplist=encoding == "skiplist",
                oldest_first=oldest_first,
            )
        if args.other_cap:
            await build_timelines(
                redis,
                user_ids,
                args.other_cap,
                gen,
                skiplist=encoding == "skiplist",
                key=other_cap_key,
            )
        print(
            f"[fanout] built {n} {encoding} timelines of {CAP} entries in each layout "
            + (f"and of {args.other_cap} " if args.other_cap else "")
            + f"in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        probe = timeline_key(user_ids[0])
        memory[encoding] = {"at_cap": await memory_of(redis, probe)}
        assert memory[encoding]["at_cap"]["encoding"] == encoding
        if args.other_cap:
            other_probe = other_cap_key(user_ids[0])
            memory[encoding]["at_other_cap"] = await memory_of(redis, other_probe)
            assert memory[encoding]["at_other_cap"]["encoding"] == encoding
        # Every row but the lazy ones trims to the cap on each push, so a lazy block of
        # slack + 1 posts starts at the cap and trims each timeline exactly once.
        rows = [
            Row(encoding, "naive: ZADD + ZREMRANGEBYRANK, a round trip per follower", naive, 1,
                top_level="naive"),
            Row(encoding, "previous push: a script call per follower, pipelined by 200",
                previous_only, args.block),
            Row(encoding, "previous full path: page the followers, then previous push",
                previous_full, args.block),
            Row(encoding, "push: a script call per chunk of keys, exact trim", exact_push,
                args.block),
            Row(encoding, f"push: a script call per chunk of keys, lazy trim (slack {slack})",
                lazy_push, slack + 1),
            Row(encoding, "push as it was: oldest-first lists, lazy trim", push_as_it_was,
                slack + 1),
            Row(encoding, "full path as it was: oldest-first lists, paging statement per page",
                full_as_it_was, slack + 1),
            Row(encoding, f"full path: push_pages over the pages, lazy trim (slack {slack})",
                current_full, slack + 1),
            Row(encoding, f"full path, pages of {args.big_page}", current_full_big_pages,
                slack + 1),
            *(
                [
                    Row(encoding, f"cap {args.other_cap}: push, lazy trim "
                        f"(slack {other.trim_slack})", other_cap_push, other.trim_slack + 1),
                    Row(encoding, f"cap {args.other_cap}: full path, pages of {args.big_page}",
                        other_cap_full, other.trim_slack + 1),
                ]
                if args.other_cap
                else []
            ),
            *(
                Row(encoding, f"sweep: push, chunk {c}, {k} in flight, exact trim", exact_push,
                    args.block, chunk=c, in_flight=k)
                for c, k in SWEEP
            ),
        ]  # fmt: skip
        # Rounds interleave the rows, so a burst of other load on the machine is shared.
        for round_ in range(args.rounds):
            for row in rows:
                await row.measure(redis, gen, n, pg_cpu)
            print(f"[fanout] {encoding}: round {round_ + 1} of {args.rounds} done", flush=True)
        for row in rows:
            summary = row.summary()
            summaries.append(summary)
            print(
                f"[fanout] {encoding:8} {row.name}: {summary['inserts_per_s']:,.0f} inserts/s "
                f"(best {summary['inserts_per_s_best']:,.0f}; Redis CPU "
                f"{summary['redis_cpu_us_per_insert']:.1f} µs/insert, client CPU "
                f"{summary['client_cpu_us_per_insert']:.1f} µs, PostgreSQL CPU "
                f"{summary['postgres_cpu_us_per_insert']:.1f} µs, command time "
                f"{summary['command_us_per_insert']:.1f} µs, "
                f"{summary['command_ms_per_call']:.2f} ms per call)",
                flush=True,
            )
        lengths = {await redis.zcard(timeline_key(uid)) for uid in user_ids[:200]}
        assert all(CAP + 1 <= length <= CAP + slack + 1 for length in lengths), lengths
        if args.other_cap:
            lengths = {await redis.zcard(other_cap_key(uid)) for uid in user_ids[:200]}
            top = args.other_cap + other.trim_slack + 1
            assert all(args.other_cap + 1 <= length <= top for length in lengths), lengths
        await redis.delete(probe)
        await build_timelines(
            redis, [user_ids[0]], CAP + slack, gen, skiplist=encoding == "skiplist"
        )
        memory[encoding]["at_cap_plus_slack"] = await memory_of(redis, probe)
        print(f"[fanout] {encoding} memory per timeline: {memory[encoding]}", flush=True)

    await database.dispose()
    await admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    await admin.close()
    return {
        "followers": n,
        "paging_ms": [t * 1000 for t in paging],
        "trim_slack": slack,
        "other_cap": args.other_cap,
        "rows": summaries,
        "memory": memory,
    }


async def naive_push(redis: aioredis.Redis, user_ids: Sequence[int], post_id: int) -> int:
    """The baseline: one round trip per follower (ZADD + trim, as Stream-Framework 1.4.0)."""
    ms, name = id_to_unix_ms(post_id), member(post_id)
    for uid in user_ids:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(oldest_first_key(uid), {name: ms})
            pipe.zremrangebyrank(oldest_first_key(uid), 1, -(CAP + 2))
            await pipe.execute()
    return len(user_ids)


# --------------------------------------------------------------------------- (ii) a stream


def zipf_counts(authors: int, top: int, exponent: float) -> list[int]:
    """Follower counts: the author of rank k has top / k^exponent followers (at least 1)."""
    return [max(1, int(top / (k**exponent))) for k in range(1, authors + 1)]


def partition_of(author: int) -> int:
    return zlib.crc32(str(author).encode()) % PARTITIONS


async def stream_worker(
    url: str, spec_path: Path, worker: int, workers: int, implementation: str
) -> None:
    """One worker process of (ii): its share of the stream, after a go on stdin."""
    spec = json.loads(spec_path.read_text())
    pool, followers, counts = spec["pool"], spec["followers"], spec["counts"]
    threshold = spec["threshold"]
    mine = [
        (author, post)
        for author, post in spec["events"]
        if partition_of(author) % workers == worker
    ]
    redis = aioredis.from_url(url, decode_responses=True)
    store = TimelineStore(redis, cap=CAP)
    as_it_was = OldestFirst(redis, cap=CAP)
    previous = redis.register_script(PREVIOUS_SCRIPT)

    async def push(user_ids: Sequence[int], post: int) -> int:
        if implementation == "previous":
            return await previous_push(redis, previous, user_ids, post)
        if implementation == "as it was":
            return await as_it_was.push(user_ids, post)
        return await store.push(user_ids, post)

    await redis.ping()
    await push([pool[0]], mine[0][1] if mine else 1)  # load the script, warm the connection
    print("ready", flush=True)
    sys.stdin.readline()
    inserts = skipped = 0
    per_post: list[float] = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for author, post in mine:
        # The author's own timeline is pushed in every case, as the worker does.
        await push([pool[author % len(pool)]], post)
        if counts[author] >= threshold:
            skipped += counts[author]
            continue
        p0 = time.perf_counter()
        inserts += await push(followers[author], post)
        per_post.append(time.perf_counter() - p0)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    await redis.aclose()
    print(
        json.dumps(
            {
                "posts": len(mine),
                "inserts": inserts,
                "skipped": skipped,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "per_post_ms": [p * 1000 for p in per_post],
            }
        ),
        flush=True,
    )


async def stream(
    args: argparse.Namespace, url: str, redis: aioredis.Redis, gen: IdGenerator
) -> dict:
    rng = random.Random(5)
    pool = [gen.next_id() for _ in range(args.pool)]
    counts = zipf_counts(args.authors, args.top, args.exponent)
    followers = [rng.sample(pool, c) for c in counts]
    await redis.flushdb()
    t = time.perf_counter()
    for oldest_first in (False, True):
        await build_timelines(redis, pool, args.stream_entries, gen, oldest_first=oldest_first)
    print(
        f"[stream] built {len(pool):,} timelines of {args.stream_entries} entries in "
        f"{time.perf_counter() - t:.1f} s",
        flush=True,
    )
    # Each author posts `posts_per_author` times, in a shuffled order (a stream of events).
    authors = [a for a in range(args.authors) for _ in range(args.posts_per_author)]
    rng.shuffle(authors)
    out: dict = {
        "authors": args.authors,
        "pool": args.pool,
        "top": args.top,
        "exponent": args.exponent,
        "threshold": args.threshold,
        "posts": len(authors),
        "celebrities": sum(c >= args.threshold for c in counts),
        "followers_total": sum(counts),
        "partitions": PARTITIONS,
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "stream.json"
        runs = (("previous", 1), ("as it was", 1), ("current", 1), ("current", 2))
        for implementation, workers in runs:
            events = [(a, gen.next_id()) for a in authors]
            spec_path.write_text(
                json.dumps(
                    {
                        "pool": pool,
                        "followers": followers,
                        "counts": counts,
                        "threshold": args.threshold,
                        "events": events,
                    }
                )
            )
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--stream-worker",
                        url,
                        str(spec_path),
                        str(w),
                        str(workers),
                        implementation,
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=REPO,
                )
                for w in range(workers)
            ]
            for proc in procs:
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready"
            cpu0, _ = await redis_counters(redis)
            t0 = time.perf_counter()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            results = []
            for proc in procs:  # each worker's line, before any of them is waited for
                assert proc.stdout is not None
                results.append(json.loads(proc.stdout.readline()))
            wall = time.perf_counter() - t0
            for proc in procs:
                proc.wait(timeout=60)
            cpu1, _ = await redis_counters(redis)
            inserts = sum(r["inserts"] for r in results)
            per_post = [p for r in results for p in r["per_post_ms"]]
            run = {
                "implementation": implementation,
                "workers": workers,
                "posts": sum(r["posts"] for r in results),
                "inserts": inserts,
                "skipped": sum(r["skipped"] for r in results),
                "seconds": wall,
                "worker_seconds": [r["seconds"] for r in results],
                # CPU time each worker got: below its wall time when the cores are shared.
                "worker_cpu_seconds": [r["cpu_seconds"] for r in results],
                "redis_cpu_seconds": cpu1 - cpu0,
                "posts_per_s": len(events) / wall,
                "inserts_per_s": inserts / wall,
                "redis_cpu_us_per_insert": (cpu1 - cpu0) * 1e6 / inserts,
                "post_p50_ms": percentile(per_post, 50),
                "post_p99_ms": percentile(per_post, 99),
                "post_max_ms": max(per_post),
            }
            assert run["posts"] == len(events)
            out["runs"].append(run)
            print(
                f"[stream] {implementation} push, {workers} worker(s): {inserts:,} inserts "
                f"({run['skipped']:,} skipped) in {wall:.1f} s = {run['posts_per_s']:,.0f} "
                f"posts/s, {run['inserts_per_s']:,.0f} inserts/s",
                flush=True,
            )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5, help="paging runs")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the rows of (i)")
    parser.add_argument("--block", type=int, default=2, help="posts per row per round")
    parser.add_argument("--authors", type=int, default=2_000)
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=50_000, help="followers of the top author")
    parser.add_argument("--exponent", type=float, default=1.0)
    parser.add_argument("--threshold", type=int, default=10_000)
    parser.add_argument("--posts-per-author", type=int, default=1)
    parser.add_argument(
        "--stream-entries",
        type=int,
        default=100,
        help="entries in each pool timeline before the stream",
    )
    parser.add_argument(
        "--big-page", type=int, default=5000, help="the larger page of the full path's last row"
    )
    parser.add_argument(
        "--other-cap",
        type=int,
        default=400,
        help=f"also measure push and the full path on timelines of this cap (0: only {CAP})",
    )
    parser.add_argument("--skip-one-post", action="store_true")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument(
        "--shared-redis", action="store_true", help="database 5 of the local Redis instead"
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if args.shared_redis:
        await run(args, f"{REDIS_BASE}{REDIS_DB}")
        return
    with own_redis() as url:
        await run(args, url)


async def run(args: argparse.Namespace, url: str) -> None:
    gen = IdGenerator(2)
    # FLUSHDB of 10,000 skiplist timelines (1 GB) takes seconds on a busy machine.
    redis = aioredis.from_url(url, decode_responses=True, socket_timeout=300)
    info = await redis.info("server")
    config = await redis.config_get("zset-max-listpack-entries")
    try:
        await redis.flushdb()
        figures: dict[str, Any] = {
            "when": today(),
            "loadavg_at_start": os.getloadavg(),
            "revision": revision(),
            "machine": machine(),
            "redis": info["redis_version"],
            "redis_url": url,
            "zset_max_listpack_entries": config["zset-max-listpack-entries"],
            "command": "uv run python bench/fanout.py " + " ".join(sys.argv[1:]),
        }
        if not args.skip_one_post:
            figures["one_post"] = await one_post(args, redis, gen)
        if not args.skip_stream:
            figures["stream"] = await stream(args, url, redis, gen)
    finally:
        await redis.flushdb()
        await redis.aclose()
    figures["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--stream-worker":
        url, spec, worker, workers, implementation = sys.argv[2:]
        asyncio.run(stream_worker(url, Path(spec), int(worker), int(workers), implementation))
    else:
        asyncio.run(main())
