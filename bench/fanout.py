# ruff: noqa: ASYNC221 (a bench: local processes, run once, by hand)
"""Fan-out benchmark: timeline inserts per second on real Redis (and PostgreSQL for paging).

(i)  One post to 10,000 built timelines (800 entries each, so every insert also trims):
     - baseline: the naive fan-out, one Redis round trip per follower (ZADD, then
       ZREMRANGEBYRANK to the cap, in a pipeline of two commands per follower, as
       Stream-Framework 1.4.0 does);
     - the same Lua script Photogram uses, but one EVALSHA round trip per follower;
     - `TimelineStore.push` as the fanout-worker calls it (chunks of 200, pipelined Lua);
     - the full path: page the 10,000 active followers out of PostgreSQL with user-service's
       `repository.active_follower_ids` (pages of 1,000, as the worker asks), then push.
(ii) A stream of posts over a power-law follower graph: authors whose follower counts follow
     a Zipf law over a pool of users, each author posting in turn; authors at or above the
     celebrity threshold are skipped (pulled at read time). Reports inserts/s and the inserts
     the pull policy saved, against pushing every post to everyone.

Redis: database 5 of the local Redis (FLUSHDB before and after; the key layout `tl:{id}`
is fixed, so the bench needs a database of its own). PostgreSQL: a database of its own
(`photogram_bench_fanout`, made with user-service's migrations, dropped at the end).

    uv run python bench/fanout.py [--followers 10000] [--repeats 5] [--authors 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import PG_ADMIN, REDIS_BASE, REPO, machine, percentile, pg_url, revision, today

from photogram_common.db import Database
from photogram_common.ids import IdGenerator, id_to_unix_ms
from photogram_common.timelines import SENTINEL, TimelineStore, member, timeline_key

REDIS_DB = 5
PG_DB = "photogram_bench_fanout"
CAP = 800


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def build_timelines(
    redis: aioredis.Redis,
    user_ids: list[int],
    entries: int,
    gen: IdGenerator,
    *,
    skiplist: bool = False,
) -> None:
    """Build each timeline (sentinel + `entries` older posts), as a reader's rebuild leaves it.

    One template is built, then COPYed: inserting 800 members one by one into each
    listpack would cost Redis O(n^2) per key and dominate the set-up.
    """
    template = "bench:template"
    await redis.delete(template)
    old = [gen.next_id() for _ in range(entries)]
    await redis.zadd(template, {SENTINEL: 0})
    if skiplist:
        # A member longer than zset-max-listpack-value (64 bytes) turns the set into a
        # skiplist, which it stays; scored 0 it sorts right after the sentinel, so the
        # first push trims it away.
        await redis.zadd(template, {SENTINEL + "x" * 64: 0})
    for start in range(0, len(old), 100):
        await redis.zadd(template, {member(p): id_to_unix_ms(p) for p in old[start : start + 100]})
    for start in range(0, len(user_ids), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for uid in user_ids[start : start + 1000]:
                pipe.copy(template, timeline_key(uid), replace=True)
            await pipe.execute()
    await redis.delete(template)


async def server_usec(redis: aioredis.Redis) -> dict[str, tuple[int, int]]:
    """(calls, usec) per command from INFO commandstats (the whole server: includes others)."""
    stats = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in stats.items()}


def server_delta(before: dict, after: dict) -> float:
    """Redis CPU microseconds spent between two snapshots, over all commands."""
    return sum(after[k][1] - before.get(k, (0, 0))[1] for k in after) / 1.0


async def naive_push(redis: aioredis.Redis, user_ids: list[int], post_id: int) -> int:
    """The baseline: one round trip per follower (ZADD + trim, as Stream-Framework 1.4.0)."""
    score, name = id_to_unix_ms(post_id), member(post_id)
    for uid in user_ids:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(timeline_key(uid), {name: score})
            pipe.zremrangebyrank(timeline_key(uid), 1, -(CAP + 2))
            await pipe.execute()
    return len(user_ids)


async def lua_one_by_one(store: TimelineStore, user_ids: list[int], post_id: int) -> int:
    """Photogram's Lua script, but awaited once per follower (no pipelining)."""
    score, name = id_to_unix_ms(post_id), member(post_id)
    added = 0
    for uid in user_ids:
        added += int(
            await store._add_if_built(keys=[timeline_key(uid)], args=[score, name, store.cap])
        )
    return added


async def raw_evalsha_push(store: TimelineStore, user_ids: list[int], post_id: int) -> int:
    """A variant of TimelineStore.push: the same script and chunks, but queued as bare
    EVALSHA commands (no redis-py Script wrapper per follower), to show the client's share."""
    from photogram_common.timelines import CHUNK

    redis = store.redis
    sha = store._add_if_built.sha or await redis.script_load(store._add_if_built.script)
    score, name = id_to_unix_ms(post_id), member(post_id)
    added = 0
    for start in range(0, len(user_ids), CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for uid in user_ids[start : start + CHUNK]:
                pipe.execute_command("EVALSHA", sha, 1, timeline_key(uid), score, name, store.cap)
            added += sum(int(r) for r in await pipe.execute())
    return added


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


async def page_followers(database: Database, author: int, page_size: int) -> list[int]:
    """What user-service's /internal/users/{id}/active-followers does, page after page."""
    from user_service import repository as repo

    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    found: list[int] = []
    after = 0
    while True:
        async with database.transaction() as session:
            page = await repo.active_follower_ids(
                session, user_id=author, active_since=since, after=after, limit=page_size
            )
        found.extend(page)
        if len(page) < page_size:
            return found
        after = page[-1]


async def one_post(args: argparse.Namespace, redis: aioredis.Redis, gen: IdGenerator) -> dict:
    n = args.followers
    author, pg_followers = await pg_follow_graph(n, gen)
    database = Database(pg_url(PG_DB, driver="asyncpg"), pool_size=2)
    store = TimelineStore(redis, cap=CAP)
    user_ids = pg_followers
    await redis.flushdb()
    t = time.perf_counter()
    await build_timelines(redis, user_ids, CAP, gen)
    build_s = time.perf_counter() - t
    print(f"[fanout] built {n} timelines of {CAP} entries in {build_s:.1f} s", flush=True)

    results: dict[str, list[float]] = {}
    server_s: dict[str, list[float]] = {}

    async def run(name: str, fn, repeats: int) -> None:
        times, server = [], []
        for _ in range(repeats):
            post = gen.next_id()
            before = await server_usec(redis)
            t0 = time.perf_counter()
            added = await fn(post)
            times.append(time.perf_counter() - t0)
            server.append(server_delta(before, await server_usec(redis)) / 1e6)
            assert added == n, (name, added)
        results[name] = times
        server_s[name] = server
        print(
            f"[fanout] {name}: median {percentile(times, 50) * 1000:.0f} ms "
            f"({n / percentile(times, 50):,.0f} inserts/s; Redis busy "
            f"{percentile(server, 50) * 1000:.0f} ms)",
            flush=True,
        )

    async def full_path(post: int) -> int:
        ids = await page_followers(database, author, 1000)
        return await store.push(ids, post)

    paging: list[float] = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ids = await page_followers(database, author, 1000)
        paging.append(time.perf_counter() - t0)
        assert ids == user_ids
    print(
        f"[fanout] paging {n} active followers from PostgreSQL: "
        f"median {percentile(paging, 50) * 1000:.0f} ms",
        flush=True,
    )

    # Interleave nothing else with Redis while measuring; the naive runs are the slow ones.
    await run(
        "naive: ZADD+ZREMRANGEBYRANK, one round trip per follower",
        lambda p: naive_push(redis, user_ids, p),
        max(2, args.repeats // 2),
    )
    await run(
        "Lua script, one EVALSHA round trip per follower",
        lambda p: lua_one_by_one(store, user_ids, p),
        max(2, args.repeats // 2),
    )
    await run(
        "TimelineStore.push (chunks of 200, pipelined Lua)",
        lambda p: store.push(user_ids, p),
        args.repeats,
    )
    await run(
        "variant: same chunks, bare EVALSHA commands (no Script wrapper)",
        lambda p: raw_evalsha_push(store, user_ids, p),
        args.repeats,
    )
    await run(
        "full path: page active followers from PostgreSQL + TimelineStore.push",
        full_path,
        args.repeats,
    )
    lengths = {await redis.zcard(timeline_key(uid)) for uid in user_ids[:50]}
    assert lengths == {CAP + 1}, lengths  # trimmed to the cap, plus the sentinel
    # The same push into 800-entry timelines encoded as skiplists (Redis's encoding under
    # its default zset-max-listpack-entries 128): what the compact listpack costs in CPU.
    await build_timelines(redis, user_ids, CAP, gen, skiplist=True)
    assert await redis.object("encoding", timeline_key(user_ids[0])) == "skiplist"
    await run(
        "TimelineStore.push into 800-entry skiplist timelines (for comparison)",
        lambda p: store.push(user_ids, p),
        args.repeats,
    )
    # The same push into small timelines (sentinel + 20 entries): what the cap costs Redis.
    await build_timelines(redis, user_ids, 20, gen)
    await run(
        "TimelineStore.push into 20-entry timelines (for comparison)",
        lambda p: store.push(user_ids, p),
        args.repeats,
    )
    await database.dispose()
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    await admin.close()
    return {
        "followers": n,
        "build_s": build_s,
        "paging_s": paging,
        "runs": results,
        "redis_busy_s": server_s,
    }


# --------------------------------------------------------------------------- (ii) a stream


def zipf_counts(authors: int, top: int, exponent: float) -> list[int]:
    """Follower counts: the author of rank k has top / k^exponent followers (at least 1)."""
    return [max(1, int(top / (k**exponent))) for k in range(1, authors + 1)]


async def stream(args: argparse.Namespace, redis: aioredis.Redis, gen: IdGenerator) -> dict:
    rng = random.Random(5)
    pool = [gen.next_id() for _ in range(args.pool)]
    counts = zipf_counts(args.authors, args.top, args.exponent)
    followers = [rng.sample(pool, c) for c in counts]
    await redis.flushdb()
    t = time.perf_counter()
    await build_timelines(redis, pool, args.stream_entries, gen)
    print(
        f"[stream] built {len(pool):,} timelines of {args.stream_entries} entries in "
        f"{time.perf_counter() - t:.1f} s",
        flush=True,
    )
    store = TimelineStore(redis, cap=CAP)
    # Each author posts `posts_per_author` times, in a shuffled order (a stream of events).
    events = [a for a in range(args.authors) for _ in range(args.posts_per_author)]
    rng.shuffle(events)
    out: dict = {
        "authors": args.authors,
        "pool": args.pool,
        "top": args.top,
        "exponent": args.exponent,
        "threshold": args.threshold,
        "posts": len(events),
        "celebrities": sum(c >= args.threshold for c in counts),
        "followers_total": sum(counts),
    }
    for label, threshold in (
        ("with the celebrity threshold", args.threshold),
        ("baseline: push every post to every follower", None),
    ):
        inserts = skipped = 0
        per_post: list[float] = []
        t0 = time.perf_counter()
        for author in events:
            post = gen.next_id()
            # The author's own timeline is pushed in every case, as the worker does.
            await store.push([pool[author % len(pool)]], post)
            if threshold is not None and counts[author] >= threshold:
                skipped += counts[author]
                continue
            p0 = time.perf_counter()
            inserts += await store.push(followers[author], post)
            per_post.append(time.perf_counter() - p0)
        elapsed = time.perf_counter() - t0
        out[label] = {
            "seconds": elapsed,
            "inserts": inserts,
            "skipped": skipped,
            "inserts_per_s": inserts / elapsed,
            "posts_per_s": len(events) / elapsed,
            "post_p50_ms": percentile(per_post, 50) * 1000,
            "post_p99_ms": percentile(per_post, 99) * 1000,
            "post_max_ms": max(per_post) * 1000,
        }
        print(
            f"[stream] {label}: {inserts:,} inserts ({skipped:,} skipped) in {elapsed:.1f} s "
            f"= {inserts / elapsed:,.0f} inserts/s, {len(events) / elapsed:,.0f} posts/s",
            flush=True,
        )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
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
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    gen = IdGenerator(2)
    redis = aioredis.from_url(f"{REDIS_BASE}{REDIS_DB}", decode_responses=True)
    info = await redis.info("server")
    try:
        await redis.flushdb()
        figures = {
            "when": today(),
            "loadavg_at_start": os.getloadavg(),
            "revision": revision(),
            "machine": machine(),
            "redis": info["redis_version"],
            "command": "uv run python bench/fanout.py " + " ".join(sys.argv[1:]),
        }

        figures["one_post"] = await one_post(args, redis, gen)
        figures["stream"] = await stream(args, redis, gen)
    finally:
        await redis.flushdb()
        await redis.aclose()
    figures["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
