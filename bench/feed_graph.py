"""Generate a feed benchmark's data straight into the distributed mode's PostgreSQL.

Fresh databases of the bench's own (`photogram_bench_users`, `photogram_bench_posts`,
`photogram_bench_media`, migrated with the services' own migrations), then, with binary
COPY streamed in chunks (indexes and constraints dropped first, rebuilt after the load
with the definitions the migrations made, so the schemas end up exactly as migrated):

- `--users` users (default 100,000), all active (`last_active_at` now), created between
  the ID epoch and 40 days ago (time-ordered IDs, as `IdGenerator` makes them);
- a follow graph shaped like Instagram's: each user's number of followees is log-normal
  (`--follows-mean` 150, `--follows-sigma` 1.0: median ~90, about 1 user in 1,000 past
  2,000), clipped to `--min-follows`..`--max-follows` (1..7,500, Instagram's own cap);
  each followee is drawn by a Zipf-like popularity, P(rank r) ~ 1/r^s (s = `--zipf`,
  0.65), with the popularity ranks shuffled over the users; duplicates and self-follows
  are re-drawn, so every user gets the followee count drawn for them (up to the users
  there are). At 1M users this puts a few accounts past 100K followers and the top one
  near 30 % of all users; at 100K users a few dozen accounts pass the 10,000 celebrity
  threshold (the summary counts them);
- posts: `--posts-per-user` (12) on average over the last 30 days, spread over the users
  by a skewed activity (each user's rate is gamma-distributed, shape
  `--activity-shape` 1.0: many users post a few, some post a lot), each with one post_media
  row whose JSON validates as `MediaRead`; `--posts` sets the total instead;
- the counts (followers, following, posts) that user-service keeps, computed from the rows
  themselves (exact);
- for the pull baseline only: a copy of the follow edges in the posts database
  (`bench_follows (follower_id, followee_id)`, primary key on both), since the services'
  databases are separate.

    uv run python bench/feed_graph.py [--users 100000] [--follows-mean 150] [--zipf 0.65]

Prints its progress (rows/s, ETA) and writes a summary (counts, distributions, the
celebrity count at the default threshold, the wall time) to `.backends/bench/graph.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import BENCH_DBS, BENCH_RUN_DIR, PG_ADMIN, REPO, bench_env, bench_lock, pg_url
from photogram_contracts.schemas import MediaRead

from photogram_common.ids import EPOCH_MS

DAY_MS = 86_400_000
SHIFT = 22  # 10 bits of worker and 12 of sequence below the milliseconds (ids.py)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z, the zero of a binary timestamptz
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
USER_WORKER, POST_WORKER, MEDIA_WORKER, FOLLOW_WORKER = 901, 902, 903, 904
CELEBRITY_THRESHOLD = 10_000


# --------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """Prints rows done, rows/s and an ETA every few seconds."""

    what: str
    total: int
    every: float = 5.0
    done: int = 0
    started: float = field(default_factory=time.perf_counter)
    last: float = 0.0

    def add(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._print(now)

    def _print(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if final:
            print(
                f"[graph] {self.what}: {self.done:,} rows in {elapsed:.1f} s ({rate:,.0f} rows/s)",
                flush=True,
            )
            return
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        print(
            f"[graph] {self.what}: {self.done:,}/{self.total:,} rows "
            f"({100 * self.done / max(self.total, 1):.0f} %), {rate:,.0f} rows/s, ETA {eta:.0f} s",
            flush=True,
        )

    def finish(self) -> None:
        self._print(time.perf_counter(), final=True)


def log(message: str, t0: float) -> None:
    print(f"[graph] {time.perf_counter() - t0:7.1f} s  {message}", flush=True)


# --------------------------------------------------------------------------- binary COPY


def fixed_rows(columns: list[tuple[np.ndarray, str]]) -> bytes:
    """Binary COPY rows of fixed-width integer columns, e.g. [(ids, ">i8"), (n, ">i4")]."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for index, (_, kind) in enumerate(columns):
        fields += [(f"len{index}", ">i4"), (f"value{index}", kind)]
    rows = np.empty(len(columns[0][0]), dtype=np.dtype(fields))
    rows["count"] = len(columns)
    for index, (values, kind) in enumerate(columns):
        rows[f"len{index}"] = np.dtype(kind).itemsize
        rows[f"value{index}"] = values
    return rows.tobytes()


def pg_timestamp(unix_ms: np.ndarray | int) -> np.ndarray | int:
    """A binary timestamptz: microseconds since 2000-01-01 UTC."""
    return unix_ms * 1000 - PG_EPOCH_US


async def copy_stream(
    conn: asyncpg.Connection, table: str, columns: list[str], chunks: AsyncIterator[bytes]
) -> int:
    """COPY a stream of binary row chunks into a table; the number of rows it took."""

    async def framed() -> AsyncIterator[bytes]:
        yield COPY_HEADER
        async for chunk in chunks:
            yield chunk
        yield COPY_TRAILER

    status = await conn.copy_to_table(
        table, source=framed(), columns=columns, format="binary", freeze=True
    )
    return int(status.split()[-1])


async def queue_chunks(queue: asyncio.Queue) -> AsyncIterator[bytes]:
    while (chunk := await queue.get()) is not None:
        yield chunk


async def threaded_chunks(make: Iterator[bytes], prefetch: int = 2) -> AsyncIterator[bytes]:
    """Run a chunk-making iterator in a thread, a chunk or two ahead of the consumer."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=prefetch)
    loop = asyncio.get_running_loop()

    def work() -> None:
        try:
            for chunk in make:
                asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
        finally:
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    worker = loop.run_in_executor(None, work)
    async for chunk in queue_chunks(queue):
        yield chunk
    await worker


# --------------------------------------------------------------------------- schema handling


@dataclass
class Stripped:
    """What was dropped from a table before its load, to be rebuilt after it."""

    table: str
    builds: list[str]  # CREATE [UNIQUE] INDEX statements (they may run concurrently)
    finish: list[str]  # ALTER TABLE ... USING INDEX, then foreign keys (after every build)


async def strip_table(conn: asyncpg.Connection, table: str) -> Stripped:
    """Drop a table's indexes, key constraints and the foreign keys that reference it."""
    constraints = await conn.fetch(
        "SELECT c.conname, c.contype::text AS contype, i.indexdef FROM pg_constraint c "
        "JOIN pg_indexes i ON i.indexname = c.conname AND i.tablename = $1 "
        "WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u')",
        table,
    )
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass)",
        table,
    )
    referencing = await conn.fetch(
        "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def "
        "FROM pg_constraint WHERE confrelid = $1::regclass AND contype = 'f'",
        table,
    )
    stripped = Stripped(table, [], [])
    for ref in referencing:
        await conn.execute(f'ALTER TABLE {ref["tbl"]} DROP CONSTRAINT "{ref["conname"]}"')
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        stripped.builds.append(index["indexdef"])
    for constraint in constraints:
        name = constraint["conname"]
        kind = "PRIMARY KEY" if constraint["contype"] == "p" else "UNIQUE"
        await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        stripped.builds.append(constraint["indexdef"])
        stripped.finish.append(
            f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {kind} USING INDEX "{name}"'
        )
    for ref in referencing:
        stripped.finish.append(
            f'ALTER TABLE {ref["tbl"]} ADD CONSTRAINT "{ref["conname"]}" {ref["def"]}'
        )
    return stripped


async def schema_of(database: str) -> list[tuple]:
    """Tables, columns, indexes and constraints: to check a load leaves the schema as migrated."""
    conn = await asyncpg.connect(pg_url(database))
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name <> 'bench_follows' ORDER BY 1, 2"
        )
        indexes = await conn.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename <> 'bench_follows' ORDER BY 1, 2"
        )
        constraints = await conn.fetch(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
            "AND conrelid::regclass::text <> 'bench_follows' ORDER BY 1, 2"
        )
    finally:
        await conn.close()
    return [tuple(r) for r in (*columns, *indexes, *constraints)]


async def fresh_databases() -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    for name in BENCH_DBS.values():
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    env = bench_env()
    env.pop("PHOTOGRAM_MODE", None)
    migrations = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "migrate",
            env=env,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for module in ("user_service", "post_service", "media_service", "notification_service")
    ]
    for migration in migrations:
        out, _ = await migration.communicate()
        if migration.returncode:
            raise SystemExit(f"migration failed:\n{out.decode(errors='replace')}")


async def session(database: str, maintenance_mb: int) -> asyncpg.Connection:
    conn = await asyncpg.connect(pg_url(database))
    await conn.execute(f"SET maintenance_work_mem = '{maintenance_mb}MB'")
    # The builds run side by side on their own connections instead of in parallel workers.
    await conn.execute("SET max_parallel_maintenance_workers = 0")
    await conn.execute("SET synchronous_commit = off")
    return conn


# --------------------------------------------------------------------------- the data


def time_ids(unix_ms: np.ndarray, worker: int) -> np.ndarray:
    """IDs as IdGenerator makes them, for sorted creation times: a sequence within each ms."""
    index = np.arange(len(unix_ms))
    first = np.r_[True, unix_ms[1:] != unix_ms[:-1]] if len(unix_ms) else np.zeros(0, bool)
    sequence = index - np.maximum.accumulate(np.where(first, index, 0))
    if len(sequence) and sequence.max() >= 1 << 12:
        raise SystemExit("more than 4,096 IDs in one millisecond: widen the time span")
    return ((unix_ms - EPOCH_MS) << SHIFT) | (worker << 12) | sequence


@dataclass
class Graph:
    users: np.ndarray  # user IDs, ascending (creation order)
    created_ms: np.ndarray
    wanted: np.ndarray  # followees drawn for each user
    ranked: np.ndarray  # popularity rank -> user index
    scale: float  # (n + 1)^(1 - s) - 1: inverts the popularity's distribution function
    power: float  # 1 / (1 - s)


def make_users(args: argparse.Namespace, rng: np.random.Generator, now_ms: int) -> Graph:
    n = args.users
    oldest = min(365 * DAY_MS, now_ms - EPOCH_MS - DAY_MS)
    created = np.sort(now_ms - rng.integers(40 * DAY_MS, oldest, size=n))
    users = time_ids(created, USER_WORKER)
    mu = np.log(args.follows_mean) - args.follows_sigma**2 / 2
    wanted = np.rint(rng.lognormal(mu, args.follows_sigma, size=n)).astype(np.int64)
    cap = min(args.max_follows, max(1, (n - 1) // 2))
    wanted = np.clip(wanted, args.min_follows, cap)
    # Clipping and rounding shave the mean a little: scale it back up to the target.
    for _ in range(5):
        if wanted.mean() >= args.follows_mean or wanted.min() >= cap:
            break
        scaled = np.rint(wanted * (1.001 * args.follows_mean / wanted.mean()))
        wanted = np.clip(scaled.astype(np.int64), args.min_follows, cap)
    if not 0 < args.zipf < 1:
        raise SystemExit("--zipf must be between 0 and 1")
    power = 1.0 / (1.0 - args.zipf)
    return Graph(users, created, wanted, rng.permutation(n), (n + 1.0) ** (1 / power) - 1, power)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def draw_followees(graph: Graph, rng: np.random.Generator, count: int) -> np.ndarray:
    """Followees by popularity: rank floor(x) with density ~ x^-s on [1, n+1), inverted."""
    x = (1.0 + rng.random(count) * graph.scale) ** graph.power
    ranks = np.minimum(x.astype(np.int64), len(graph.users)) - 1
    return graph.ranked[ranks]


def follow_chunks(
    graph: Graph, rng: np.random.Generator, chunk_edges: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(follower index, followee index) per chunk of followers, sorted, without duplicates."""
    n = len(graph.users)
    cumulative = np.cumsum(graph.wanted)
    cuts = np.searchsorted(cumulative, np.arange(chunk_edges, cumulative[-1], chunk_edges)) + 1
    for start, end in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
        if start >= end:
            continue
        want = graph.wanted[start:end]
        followers = np.repeat(np.arange(start, end, dtype=np.int64), want)
        followees = draw_followees(graph, rng, len(followers))
        keep = followees != followers
        have = sorted_unique(followers[keep] * n + followees[keep])
        missing = want - np.bincount(have // n - start, minlength=end - start)
        # Duplicates and self-follows are drawn again until each follower has its count;
        # a round adds at most what is missing, so nobody overshoots.
        for _ in range(200):
            if not missing.any():
                break
            followers = np.repeat(np.arange(start, end, dtype=np.int64), missing)
            followees = draw_followees(graph, rng, len(followers))
            keys = sorted_unique((followers * n + followees)[followees != followers])
            at = np.minimum(np.searchsorted(have, keys), len(have) - 1)
            keys = keys[have[at] != keys]
            have = np.sort(np.concatenate([have, keys]))
            missing -= np.bincount(keys // n - start, minlength=end - start)
        yield have // n, have % n


def media_json(media_id: int, user_id: int) -> bytes:
    base = f"/media/bench/{media_id}"
    return json.dumps(
        {
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
        },
        separators=(",", ":"),
    ).encode()


# The same JSON as media_json, by bytes formatting (a few times faster, checked at start).
MEDIA_TEMPLATE = (
    media_json(1111111111, 2222222222)
    .replace(b"%", b"%%")
    .replace(b"1111111111", b"%d")
    .replace(b"2222222222", b"%d")
)
assert MEDIA_TEMPLATE.count(b"%d") == 6


def media_bytes(media_id: int, user_id: int) -> bytes:
    return MEDIA_TEMPLATE % (media_id, user_id, media_id, media_id, media_id, media_id)


def user_rows(
    graph: Graph, followers: np.ndarray, following: np.ndarray, posts: np.ndarray, now_ms: int
) -> Iterator[bytes]:
    now = struct.pack(">iq", 8, pg_timestamp(now_ms))
    created = pg_timestamp(graph.created_ms)
    for start in range(0, len(graph.users), 100_000):
        out = []
        for i in range(start, min(start + 100_000, len(graph.users))):
            uid = int(graph.users[i])
            name = b"u%d" % uid
            email = b"u%d@bench.example" % uid
            out.append(
                b"".join(
                    (
                        struct.pack(">hiqi", 10, 8, uid, len(name)),
                        name,
                        struct.pack(">i", len(email)),
                        email,
                        struct.pack(">i", len(email)),
                        email,
                        b"\x00\x00\x00\x06!bench",
                        struct.pack(">iq", 8, int(created[i])),
                        now,
                        struct.pack(
                            ">iiiiii",
                            4,
                            int(followers[i]),
                            4,
                            int(following[i]),
                            4,
                            int(posts[i]),
                        ),
                    )
                )
            )
        yield b"".join(out)


USER_COLUMNS = [
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
]
POST_COLUMNS = ["id", "user_id", "author_username", "caption", "location", "created_at"]
MEDIA_COLUMNS = ["post_id", "position", "media_id", "media"]


def post_rows(
    post_ids: np.ndarray, authors: np.ndarray, post_ms: np.ndarray, chunk: int
) -> Iterator[bytes]:
    stamps = pg_timestamp(post_ms)
    for start in range(0, len(post_ids), chunk):
        out = []
        for pid, uid, ts in zip(
            post_ids[start : start + chunk].tolist(),
            authors[start : start + chunk].tolist(),
            stamps[start : start + chunk].tolist(),
            strict=True,
        ):
            name = b"u%d" % uid
            caption = b"bench post %d" % pid
            out.append(
                struct.pack(">hiqiqi", 6, 8, pid, 8, uid, len(name))
                + name
                + struct.pack(">i", len(caption))
                + caption
                + NULL
                + struct.pack(">iq", 8, ts)
            )
        yield b"".join(out)


def media_rows(
    post_ids: np.ndarray, media_ids: np.ndarray, authors: np.ndarray, chunk: int
) -> Iterator[bytes]:
    for start in range(0, len(post_ids), chunk):
        out = []
        for pid, mid, uid in zip(
            post_ids[start : start + chunk].tolist(),
            media_ids[start : start + chunk].tolist(),
            authors[start : start + chunk].tolist(),
            strict=True,
        ):
            doc = media_bytes(mid, uid)
            out.append(struct.pack(">hiqiiiqi", 4, 8, pid, 4, 0, 8, mid, len(doc)) + doc)
        yield b"".join(out)


# --------------------------------------------------------------------------- the load


async def load_follows(
    args: argparse.Namespace, graph: Graph, rng: np.random.Generator, now_ms: int, t0: float
) -> tuple[np.ndarray, np.ndarray, int, list[Stripped]]:
    """Stream the graph into users.follows and posts.bench_follows at once."""
    n = len(graph.users)
    expected = int(graph.wanted.sum())
    # Follow IDs and times: spread over the last 40 days (every user existed by then).
    start_ms = now_ms - 40 * DAY_MS
    span_ms = 40 * DAY_MS - 60_000
    if expected > span_ms:
        raise SystemExit("more follows than milliseconds in the span: widen it")
    followers_count = np.zeros(n, dtype=np.int64)
    following_count = np.zeros(n, dtype=np.int64)
    users_q: asyncio.Queue = asyncio.Queue(maxsize=2)
    pull_q: asyncio.Queue = asyncio.Queue(maxsize=2)
    progress = Progress("follows (users.follows + posts.bench_follows)", expected)
    user_ids = graph.users

    def encode() -> Iterator[tuple[bytes, bytes, int]]:
        ordinal = 0
        for follower, followee in follow_chunks(graph, rng, args.chunk_edges):
            followers_count[:] += np.bincount(followee, minlength=n)
            following_count[:] += np.bincount(follower, minlength=n)
            a, b = user_ids[follower], user_ids[followee]
            ordinals = np.arange(ordinal, ordinal + len(a), dtype=np.int64)
            ordinal += len(a)
            ms = start_ms + ordinals * span_ms // expected
            ids = ((ms - EPOCH_MS) << SHIFT) | (FOLLOW_WORKER << 12)
            yield (
                fixed_rows([(a, ">i8"), (b, ">i8"), (ids, ">i8"), (pg_timestamp(ms), ">i8")]),
                fixed_rows([(a, ">i8"), (b, ">i8")]),
                len(a),
            )

    async def produce() -> None:
        try:
            async for users_chunk, pull_chunk, rows in threaded_chunks(encode()):
                await users_q.put(users_chunk)
                await pull_q.put(pull_chunk)
                progress.add(rows)
        finally:
            await users_q.put(None)
            await pull_q.put(None)

    udb = await session(BENCH_DBS["users"], args.maintenance_mb)
    pdb = await session(BENCH_DBS["posts"], args.maintenance_mb)
    try:
        async with udb.transaction(), pdb.transaction():
            stripped = [await strip_table(udb, "follows")]
            await udb.execute("TRUNCATE follows")
            await pdb.execute(
                "CREATE TABLE bench_follows (follower_id bigint NOT NULL, "
                "followee_id bigint NOT NULL)"
            )
            stripped.append(
                Stripped(
                    "bench_follows",
                    [
                        "CREATE UNIQUE INDEX bench_follows_pkey ON public.bench_follows "
                        "USING btree (follower_id, followee_id)"
                    ],
                    [
                        "ALTER TABLE bench_follows ADD CONSTRAINT bench_follows_pkey "
                        "PRIMARY KEY USING INDEX bench_follows_pkey"
                    ],
                )
            )
            producer = asyncio.create_task(produce())
            loaded_users, loaded_pull = await asyncio.gather(
                copy_stream(
                    udb,
                    "follows",
                    ["follower_id", "followee_id", "id", "created_at"],
                    queue_chunks(users_q),
                ),
                copy_stream(
                    pdb, "bench_follows", ["follower_id", "followee_id"], queue_chunks(pull_q)
                ),
            )
            await producer
    finally:
        await udb.close()
        await pdb.close()
    progress.finish()
    total = int(following_count.sum())
    if not (loaded_users == loaded_pull == total == int(followers_count.sum())):
        raise SystemExit(
            f"follow counts disagree: users.follows {loaded_users}, bench_follows "
            f"{loaded_pull}, drawn {total}"
        )
    log(f"{total:,} follows loaded twice ({total / expected:.4f} of those drawn for)", t0)
    return followers_count, following_count, total, stripped


async def load_table(
    database: str,
    table: str,
    columns: list[str],
    chunks: Iterator[bytes],
    progress: Progress,
    rows_per_chunk: Callable[[int], int],
    maintenance_mb: int,
) -> tuple[int, Stripped]:
    conn = await session(database, maintenance_mb)
    try:
        async with conn.transaction():
            stripped = await strip_table(conn, table)
            await conn.execute(f"TRUNCATE {table}")
            index = 0

            async def tracked() -> AsyncIterator[bytes]:
                nonlocal index
                async for chunk in threaded_chunks(chunks):
                    progress.add(rows_per_chunk(index))
                    index += 1
                    yield chunk

            rows = await copy_stream(conn, table, columns, tracked())
    finally:
        await conn.close()
    progress.finish()
    return rows, stripped


async def build_indexes(
    jobs: list[tuple[str, str]], workers: int, maintenance_mb: int, t0: float
) -> None:
    """Run CREATE INDEX statements side by side on `workers` connections."""
    queue = list(jobs)

    async def worker() -> None:
        conns: dict[str, asyncpg.Connection] = {}
        try:
            while queue:
                database, sql = queue.pop(0)
                if database not in conns:
                    conns[database] = await session(database, maintenance_mb)
                started = time.perf_counter()
                await conns[database].execute(sql)
                name = sql.split(" ON ")[0].split()[-1]
                log(f"index {name} built in {time.perf_counter() - started:.1f} s", t0)
        finally:
            for conn in conns.values():
                await conn.close()

    await asyncio.gather(*(worker() for _ in range(workers)))


async def generate(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    t0 = time.perf_counter()
    MediaRead.model_validate_json(media_bytes(1, 1))
    assert media_bytes(12, 34) == media_json(12, 34)

    graph = make_users(args, rng, now_ms)
    log(
        f"{args.users:,} users; followees drawn: mean {graph.wanted.mean():.1f}, "
        f"median {np.median(graph.wanted):.0f}, max {graph.wanted.max():,}, "
        f"{int((graph.wanted > 2000).sum()):,} users past 2,000",
        t0,
    )

    # Posts: a skewed activity per user, times uniform over the last 30 days.
    n = args.users
    total_posts = args.posts if args.posts is not None else round(args.posts_per_user * n)
    activity = rng.gamma(args.activity_shape, 1.0, size=n)
    posts_count = rng.multinomial(total_posts, activity / activity.sum())
    post_ms = np.sort(now_ms - rng.integers(60_000, 30 * DAY_MS, size=total_posts))
    post_ids = time_ids(post_ms, POST_WORKER)
    media_ids = time_ids(post_ms, MEDIA_WORKER)
    authors = graph.users[rng.permutation(np.repeat(np.arange(n), posts_count))]
    log(f"{total_posts:,} posts drawn", t0)

    await fresh_databases()
    migrated = {db: await schema_of(db) for db in BENCH_DBS.values()}
    log("fresh databases migrated", t0)

    followers_count, following_count, follows, stripped = await load_follows(
        args, graph, rng, now_ms, t0
    )
    # The graph's big indexes build while the rest loads.
    jobs = [(BENCH_DBS["users"], sql) for sql in stripped[0].builds]
    jobs.append((BENCH_DBS["posts"], stripped[1].builds[0]))
    # Unsorted keys first: they take longest.
    jobs.sort(key=lambda job: "followee_id" not in job[1].split("(")[1].split(",")[0])
    builds = asyncio.create_task(build_indexes(jobs, args.index_workers, args.maintenance_mb, t0))
    chunk = args.chunk_rows
    loaded_users, users_stripped = await load_table(
        BENCH_DBS["users"],
        "users",
        USER_COLUMNS,
        user_rows(graph, followers_count, following_count, posts_count, now_ms),
        Progress("users", n),
        lambda i: min(100_000, n - i * 100_000),
        args.maintenance_mb,
    )
    loaded_posts, posts_stripped = await load_table(
        BENCH_DBS["posts"],
        "posts",
        POST_COLUMNS,
        post_rows(post_ids, authors, post_ms, chunk),
        Progress("posts", total_posts),
        lambda i: min(chunk, total_posts - i * chunk),
        args.maintenance_mb,
    )
    loaded_media, media_stripped = await load_table(
        BENCH_DBS["posts"],
        "post_media",
        MEDIA_COLUMNS,
        media_rows(post_ids, media_ids, authors, chunk),
        Progress("post_media", total_posts),
        lambda i: min(chunk, total_posts - i * chunk),
        args.maintenance_mb,
    )
    if not (loaded_users == n and loaded_posts == loaded_media == total_posts):
        raise SystemExit(f"rows disagree: {loaded_users} users, {loaded_posts} posts")
    await builds
    small_jobs = [(BENCH_DBS["users"], sql) for sql in users_stripped.builds]
    small_jobs += [
        (BENCH_DBS["posts"], sql) for sql in posts_stripped.builds + media_stripped.builds
    ]
    await build_indexes(small_jobs, args.index_workers, args.maintenance_mb, t0)

    # Constraints on their built indexes, then foreign keys (post_media -> posts).
    finishing = {
        BENCH_DBS["users"]: stripped[0].finish + users_stripped.finish,
        BENCH_DBS["posts"]: stripped[1].finish
        + media_stripped.finish
        + [s for s in posts_stripped.finish if "USING INDEX" in s]
        + [s for s in posts_stripped.finish if "USING INDEX" not in s],
    }

    async def finish(database: str, statements: list[str]) -> None:
        conn = await session(database, args.maintenance_mb)
        try:
            for sql in statements:
                await conn.execute(sql)
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()

    await asyncio.gather(*(finish(db, sql) for db, sql in finishing.items()))
    log("constraints restored, VACUUM ANALYZE done", t0)
    for db, before in migrated.items():
        after = await schema_of(db)
        if after != before:
            raise SystemExit(f"{db}: the schema differs from the migrated one after the load")
    elapsed = time.perf_counter() - t0
    log("schemas identical to the migrations'", t0)

    top = np.sort(followers_count)[::-1]
    summary = {
        "users": n,
        "follows": follows,
        "posts": total_posts,
        "zipf": args.zipf,
        "follows_per_user": {
            "distribution": f"log-normal, mean {args.follows_mean}, sigma {args.follows_sigma}, "
            f"clipped to {args.min_follows}..{args.max_follows}",
            "mean": round(float(following_count.mean()), 1),
            "median": float(np.median(following_count)),
            "p90": float(np.percentile(following_count, 90)),
            "p99": float(np.percentile(following_count, 99)),
            "max": int(following_count.max()),
            "users_past_2000": int((following_count > 2000).sum()),
        },
        "followers_per_user": {
            "median": float(np.median(followers_count)),
            "min": int(followers_count.min()),
            "top10": [int(v) for v in top[:10]],
            "past_100000": int((followers_count >= 100_000).sum()),
        },
        "max_followers": int(top[0]),
        "celebrities_at_10000": int((followers_count >= CELEBRITY_THRESHOLD).sum()),
        "posts_per_user": {
            "mean": round(total_posts / n, 2),
            "median": float(np.median(posts_count)),
            "max": int(posts_count.max()),
            "users_without_posts": int((posts_count == 0).sum()),
            "activity_shape": args.activity_shape,
        },
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
    parser.add_argument("--posts", type=int, help="total posts (default: --posts-per-user)")
    parser.add_argument("--posts-per-user", type=float, default=12.0)
    parser.add_argument("--activity-shape", type=float, default=1.0)
    parser.add_argument("--zipf", type=float, default=0.65)
    parser.add_argument("--follows-mean", type=float, default=150.0)
    parser.add_argument("--follows-sigma", type=float, default=1.0)
    parser.add_argument("--min-follows", type=int, default=1)
    parser.add_argument("--max-follows", type=int, default=7500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk-edges", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--index-workers", type=int, default=2)
    parser.add_argument("--maintenance-mb", type=int, default=1024)
    args = parser.parse_args()
    with bench_lock("feed_graph.py"):
        asyncio.run(generate(args))


if __name__ == "__main__":
    main()
