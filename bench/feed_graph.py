# ruff: noqa: S603, ASYNC221 (a bench: local processes, run once, by hand)
"""Generate a feed benchmark's data straight into the distributed mode's PostgreSQL.

Fresh databases of the bench's own (`photogram_bench_users`, `photogram_bench_posts`,
`photogram_bench_media`, migrated with the services' own migrations), then, with COPY:

- `--users` users (default 100,000), all active (`last_active_at` now);
- a follow graph: each user follows 20-50 accounts (uniform), drawn by a Zipf-like
  popularity (P(rank r) ~ 1/r^s, s = `--zipf`), popularity ranks shuffled over the users;
- `--posts` posts (default 500,000) by random authors, created over the last 30 days, with
  time-ordered IDs from `photogram_common.ids.IdGenerator` on a clock set to each post's
  time, each with one post_media row whose JSON validates as `MediaRead`;
- the counts (followers, following, posts) that user-service keeps, computed from the rows;
- for the pull baseline only: a copy of the follow edges in the posts database
  (`bench_follows`, indexed by follower), since the two services' databases are separate.

    uv run python bench/feed_graph.py [--users 100000] [--posts 500000] [--zipf 0.9]

Writes a summary (counts, the celebrity count at the default threshold) to
`.backends/bench/graph.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import itertools
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import BENCH_DBS, BENCH_RUN_DIR, PG_ADMIN, REPO, bench_env, pg_url

from photogram_common.ids import EPOCH_MS, IdGenerator
from photogram_common.schemas import MediaRead

DAY_MS = 86_400_000


def media_json(media_id: int, user_id: int) -> dict:
    base = f"/media/bench/{media_id}"
    return {
        "media_id": str(media_id),
        "user_id": str(user_id),
        "content_type": "image/jpeg",
        "width": 1080,
        "height": 1350,
        "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        "variants": {
            "thumbnail": {"url": f"{base}/thumbnail.jpg", "width": 150, "height": 150},
            "small": {"url": f"{base}/small.jpg", "width": 320, "height": 400},
            "medium": {"url": f"{base}/medium.jpg", "width": 640, "height": 800},
            "large": {"url": f"{base}/large.jpg", "width": 1080, "height": 1350},
        },
    }


async def fresh_databases() -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    for name in BENCH_DBS.values():
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    env = bench_env()
    env.pop("PHOTOGRAM_MODE", None)
    for module in ("user_service", "post_service", "media_service"):
        subprocess.run(
            [sys.executable, "-m", module, "migrate"],
            env=env,
            check=True,
            cwd=REPO,
            capture_output=True,
        )


async def copy_fast(conn: asyncpg.Connection, table: str, columns: list[str], records) -> None:
    """COPY into a table with its indexes and unique constraints dropped, then rebuilt."""
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype IN ('p', 'u')",
        table,
    )
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass)",
        table,
    )
    referenced = await conn.fetch(
        "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def "
        "FROM pg_constraint WHERE confrelid = $1::regclass AND contype = 'f'",
        table,
    )
    for ref in referenced:
        await conn.execute(f'ALTER TABLE {ref["tbl"]} DROP CONSTRAINT "{ref["conname"]}"')
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["indexname"]}"')
    for constraint in constraints:
        await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint["conname"]}"')
    await conn.copy_records_to_table(table, records=records, columns=columns)
    await conn.execute("SET maintenance_work_mem = '512MB'")
    for constraint in constraints:
        await conn.execute(
            f'ALTER TABLE {table} ADD CONSTRAINT "{constraint["conname"]}" {constraint["def"]}'
        )
    for index in indexes:
        await conn.execute(index["indexdef"])


async def generate(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    now = dt.datetime.now(dt.UTC)
    now_ms = int(now.timestamp() * 1000)
    t0 = time.perf_counter()

    # Users, created between the ID epoch and 40 days ago (IDs in creation order).
    oldest = min(365 * DAY_MS, now_ms - EPOCH_MS - DAY_MS)
    created = sorted(now_ms - rng.randrange(40 * DAY_MS, oldest) for _ in range(args.users))
    clock = {"ms": 0}
    user_gen = IdGenerator(901, clock=lambda: clock["ms"])
    users = []
    for ms in created:
        clock["ms"] = ms
        users.append(user_gen.next_id())

    # Popularity: rank r (1-based) has weight 1/r^s; ranks shuffled over the users.
    ranked = users[:]
    rng.shuffle(ranked)
    cum = list(itertools.accumulate(1.0 / (r**args.zipf) for r in range(1, args.users + 1)))
    total = cum[-1]
    follows: list[tuple[int, int]] = []
    for follower in users:
        want = rng.randint(args.min_follows, args.max_follows)
        chosen: set[int] = set()
        while len(chosen) < want:
            followee = ranked[bisect.bisect_left(cum, rng.random() * total)]
            if followee != follower:
                chosen.add(followee)
        follows.extend((follower, f) for f in chosen)
    followers_count = Counter(f for _, f in follows)
    following_count = Counter(u for u, _ in follows)
    print(
        f"[graph] {len(users):,} users, {len(follows):,} follows drawn in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    # Posts over the last 30 days, by random authors, IDs on a clock set to each post's time.
    post_times = sorted(now_ms - rng.randrange(1, 30 * DAY_MS) for _ in range(args.posts))
    post_gen = IdGenerator(902, clock=lambda: clock["ms"])
    media_gen = IdGenerator(903, clock=lambda: clock["ms"])
    posts_count: Counter[int] = Counter()
    post_rows, media_rows = [], []
    MediaRead.model_validate(media_json(1, 1))
    for ms in post_times:
        clock["ms"] = ms
        author = users[rng.randrange(args.users)]
        post_id, media_id = post_gen.next_id(), media_gen.next_id()
        at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        post_rows.append(
            (post_id, author, f"u{author}"[:30], f"bench post {post_id}", None, at, None)
        )
        media_rows.append((post_id, 0, media_id, json.dumps(media_json(media_id, author))))
        posts_count[author] += 1

    user_rows = []
    follow_gen = IdGenerator(904)
    for uid, ms in zip(users, created, strict=True):
        at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        name = f"u{uid}"[:30]
        user_rows.append(
            (
                uid,
                name,
                f"{name}@bench.example",
                f"{name}@bench.example",
                "!bench",
                at,
                now,
                followers_count[uid],
                following_count[uid],
                posts_count[uid],
            )
        )
    print(f"[graph] {len(post_rows):,} posts made in {time.perf_counter() - t0:.1f} s", flush=True)

    await fresh_databases()
    udb = await asyncpg.connect(pg_url(BENCH_DBS["users"]))
    await copy_fast(
        udb,
        "users",
        [
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
        user_rows,
    )
    await copy_fast(
        udb,
        "follows",
        ["follower_id", "followee_id", "id", "created_at"],
        [(a, b, follow_gen.next_id(), now) for a, b in follows],
    )
    await udb.execute("VACUUM ANALYZE users")
    await udb.execute("VACUUM ANALYZE follows")
    await udb.close()
    print(f"[graph] users database loaded at {time.perf_counter() - t0:.1f} s", flush=True)

    pdb = await asyncpg.connect(pg_url(BENCH_DBS["posts"]))
    # COPY is binary: a json value's binary form is its UTF-8 text.
    await pdb.set_type_codec(
        "json", encoder=str.encode, decoder=bytes.decode, schema="pg_catalog", format="binary"
    )
    fk = await pdb.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'post_media'::regclass AND contype = 'f'"
    )
    for c in fk:
        await pdb.execute(f'ALTER TABLE post_media DROP CONSTRAINT "{c["conname"]}"')
    await copy_fast(
        pdb,
        "posts",
        ["id", "user_id", "author_username", "caption", "location", "created_at", "deleted_at"],
        post_rows,
    )
    await copy_fast(pdb, "post_media", ["post_id", "position", "media_id", "media"], media_rows)
    for c in fk:
        await pdb.execute(f'ALTER TABLE post_media ADD CONSTRAINT "{c["conname"]}" {c["def"]}')
    # The pull baseline's copy of the graph (not part of Photogram's schema).
    await pdb.execute(
        "CREATE TABLE bench_follows (follower_id bigint NOT NULL, "
        "followee_id bigint NOT NULL, PRIMARY KEY (follower_id, followee_id))"
    )
    await pdb.copy_records_to_table(
        "bench_follows", records=follows, columns=["follower_id", "followee_id"]
    )
    for table in ("posts", "post_media", "bench_follows"):
        await pdb.execute(f"VACUUM ANALYZE {table}")
    await pdb.close()
    elapsed = time.perf_counter() - t0
    print(f"[graph] posts database loaded; total {elapsed:.1f} s", flush=True)

    top = followers_count.most_common(1)[0][1]
    assert min(users) > 0 and min(p[0] for p in post_rows) > 0
    summary = {
        "users": len(users),
        "follows": len(follows),
        "posts": len(post_rows),
        "zipf": args.zipf,
        "follows_per_user": [args.min_follows, args.max_follows],
        "max_followers": top,
        "celebrities_at_10000": sum(1 for c in followers_count.values() if c >= 10_000),
        "load_seconds": round(elapsed, 1),
        "seed": args.seed,
    }
    BENCH_RUN_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_RUN_DIR / "graph.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--posts", type=int, default=500_000)
    parser.add_argument("--zipf", type=float, default=0.9)
    parser.add_argument("--min-follows", type=int, default=20)
    parser.add_argument("--max-follows", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(generate(parser.parse_args()))


if __name__ == "__main__":
    main()
