"""User search at scale: the search, the prefix indexes alone and a full scan, same data, one run.

Makes a scratch database (`photogram_bench_search`) migrated as user-service's, loads
`--users` users (default 1,000,000) with names drawn long-tailed from a few thousand first
and last names, usernames of two to four syllables plus digits and a log-normal follower
count, then runs user-service's own search query (`user_service.repository.search`, the
first page of 20 and the page after it) for prefixes of 1, 2 and 3 characters and for
whole usernames, each drawn from the data. Each query runs three times in the same
connection state, in turn: as the search runs (up to three characters, a walk of the most
followed first on the index of the migration "users by followers", then the prefix
indexes if the walk finds less than a page), with the prefix indexes alone (the three
`text_pattern_ops` indexes of the migration "users search", combined by a bitmap OR: the
search before the walk), and with index and bitmap scans turned off (the sequential scan
a search without indexes would be). The last line printed
is one JSON object; the figures go to docs/bench/search-<users>.json.

    uv run python bench/search.py --users 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import PG_ADMIN, REPO, pg_url

from photogram_common.db import Database
from user_service import repository

DATABASE = "photogram_bench_search"
SYLLABLES = [a + b for a in "bcdfghjklmnprstvz" for b in "aeiou"] + ["ana", "eli", "oli"]
QUERIES_PER_CLASS = 40


def zipf_picker(rng: random.Random, items: list[str], s: float = 0.8) -> Any:
    """Long-tailed draws: the name of rank r is drawn with weight r^-s (with 3,000 first
    names and s = 0.8 the commonest is about 4 % of people, as the commonest given names of a
    large country are)."""
    weights = [r**-s for r in range(1, len(items) + 1)]
    cumulative = list(itertools.accumulate(weights))

    def pick() -> str:
        return rng.choices(items, cum_weights=cumulative)[0]

    return pick


def names(rng: random.Random, count: int) -> list[str]:
    return list(
        dict.fromkeys(
            "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
            for _ in range(count * 2)
        )
    )[:count]


def migrate(url: str) -> None:
    env = dict(os.environ, PHOTOGRAM_USERS_DATABASE_URL=url)
    env.pop("PHOTOGRAM_MODE", None)
    subprocess.run([sys.executable, "-m", "user_service", "migrate"], env=env, check=True, cwd=REPO)


async def load(users: int, seed: int) -> dict[str, Any]:
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    await admin.close()
    migrate(pg_url(DATABASE, driver="asyncpg"))
    rng = random.Random(seed)
    first_name = zipf_picker(rng, names(rng, 3000))
    last_name = zipf_picker(rng, names(rng, 8000))
    now = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    conn = await asyncpg.connect(pg_url(DATABASE))
    taken: set[str] = set()
    rows = []
    for i in range(users):
        while True:
            username = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
            if rng.random() < 0.6:
                username += str(rng.randint(0, 9999))
            if username not in taken and len(username) >= 3:
                taken.add(username)
                break
        rows.append(
            (
                i + 1,
                username,
                f"{username}@bench.example",
                f"{username}@bench.example",
                "x",
                first_name(),
                last_name(),
                now,
                now,
                int(rng.lognormvariate(4.0, 1.6)),
                0,
                0,
            )
        )
    columns = [
        "id",
        "username",
        "email",
        "email_normalized",
        "password_hash",
        "first_name",
        "last_name",
        "created_at",
        "last_active_at",
        "followers_count",
        "following_count",
        "posts_count",
    ]
    for start in range(0, users, 100_000):
        await conn.copy_records_to_table(
            "users", records=rows[start : start + 100_000], columns=columns
        )
        print(f"[search] loaded {min(start + 100_000, users):,}/{users:,} users", flush=True)
    await conn.execute("ANALYZE users")
    size = await conn.fetchval("SELECT pg_total_relation_size('users')")
    indexes = await conn.fetch(
        "SELECT indexrelname, pg_relation_size(indexrelid) AS bytes FROM pg_stat_user_indexes "
        "WHERE relname = 'users' ORDER BY 1"
    )
    await conn.close()
    return {
        "users": users,
        "load_s": round(time.monotonic() - t0, 1),
        "table_and_indexes_mb": round(size / 2**20, 1),
        "index_mb": {r["indexrelname"]: round(r["bytes"] / 2**20, 1) for r in indexes},
        "sample": [(r[1], r[5], r[6]) for r in rows[:3]],
        "usernames": [r[1] for r in rng.sample(rows, QUERIES_PER_CLASS)],
        "names": [r[5] for r in rng.sample(rows, QUERIES_PER_CLASS)],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


# The search as it runs, and what it is compared with in the same connection state: the
# prefix indexes alone (the search before the walk of the most followed) and no index.
PLANS: dict[str, tuple[Any, list[str]]] = {
    "search": (repository.search, []),
    "prefix_indexes_only": (repository.search_by_prefix, []),
    "full_scan": (
        repository.search_by_prefix,
        ["SET LOCAL enable_indexscan = off", "SET LOCAL enable_bitmapscan = off"],
    ),
}


async def timed(database: Database, prefix: str, *, plan: str) -> tuple[float, float, int]:
    """Milliseconds for the first page and for the page after it, and the first page's size."""
    search, settings = PLANS[plan]
    async with database.transaction() as session:
        for statement in settings:
            await session.execute(text(statement))
        t0 = time.perf_counter()
        first = await search(session, prefix, after=None, limit=21)
        t1 = time.perf_counter()
        after = (first[19]["followers_count"], first[19]["id"]) if len(first) > 20 else None
        if after is not None:
            await search(session, prefix, after=after, limit=21)
        t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000 if after else float("nan"), len(first)


async def measure(loaded: dict[str, Any]) -> dict[str, Any]:
    database = Database(pg_url(DATABASE, driver="asyncpg"), pool_size=2)
    rng = random.Random(3)
    classes = {
        "1 character": [rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(QUERIES_PER_CLASS)],
        "2 characters": [u[:2] for u in loaded["usernames"]],
        "3 characters": [n[:3].lower() for n in loaded["names"]],
        "a whole username": loaded["usernames"],
    }
    results: dict[str, Any] = {}
    try:
        for _ in range(3):  # warm the cache for every plan
            for plan in PLANS:
                await timed(database, "ka", plan=plan)
        plans = list(PLANS)
        for name, prefixes in classes.items():
            row: dict[str, Any] = {}
            firsts: dict[str, list[float]] = {plan: [] for plan in plans}
            nexts: dict[str, list[float]] = {plan: [] for plan in plans}
            sizes = []
            for i, prefix in enumerate(prefixes):
                # Each plan first as often as the others: the first to read a prefix's rows
                # pays their cache misses.
                for plan in plans[i % 3 :] + plans[: i % 3]:
                    first, after, size = await timed(database, prefix, plan=plan)
                    firsts[plan].append(first)
                    if after == after:  # not NaN: there was a next page
                        nexts[plan].append(after)
                sizes.append(size)
            for plan in plans:
                row[plan] = {
                    "first_page_p50_ms": round(percentile(firsts[plan], 50), 2),
                    "first_page_p99_ms": round(percentile(firsts[plan], 99), 2),
                    "next_page_p50_ms": (
                        round(percentile(nexts[plan], 50), 2) if nexts[plan] else None
                    ),
                    "queries": len(prefixes),
                }
            row["mean_first_page_items"] = round(sum(min(s, 20) for s in sizes) / len(sizes), 1)
            results[name] = row
            print(f"[search] {name}: {json.dumps(row)}", flush=True)
        async with database.transaction() as session:
            plan = await session.execute(
                text(
                    "EXPLAIN ANALYZE SELECT * FROM users WHERE username LIKE 'kar%' "
                    "OR lower(first_name) LIKE 'kar%' OR lower(last_name) LIKE 'kar%' "
                    "ORDER BY followers_count + 0 DESC, id LIMIT 21"
                )
            )
            results["plan_3_characters"] = [r[0] for r in plan]
            plan = await session.execute(
                text(
                    "EXPLAIN ANALYZE SELECT * FROM (SELECT * FROM users "
                    "ORDER BY followers_count DESC, id LIMIT 4000) AS top "
                    "WHERE username LIKE 'k%' OR lower(first_name) LIKE 'k%' "
                    "OR lower(last_name) LIKE 'k%' ORDER BY followers_count DESC, id LIMIT 21"
                )
            )
            results["plan_1_character_walk"] = [r[0] for r in plan]
    finally:
        await database.engine.dispose()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    loaded = await load(args.users, args.seed)
    data = {k: v for k, v in loaded.items() if k not in ("usernames", "names")}
    print(f"[search] {json.dumps(data)}")
    results = await measure(loaded)
    figures = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": f"uv run python bench/search.py --users {args.users}",
        "data": data,
        "results": results,
    }
    out = REPO / "docs" / "bench" / f"search-{args.users}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    headline = {
        "users": args.users,
        **{
            f"{name.replace(' ', '_')}_p99_ms": {
                plan: results[name][plan]["first_page_p99_ms"] for plan in PLANS
            }
            for name in ("1 character", "2 characters", "3 characters", "a whole username")
        },
    }
    print(json.dumps(headline))


if __name__ == "__main__":
    asyncio.run(main())
