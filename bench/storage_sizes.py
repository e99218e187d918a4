"""Measure the bytes behind the capacity plan: PostgreSQL rows, Redis keys, photo variants.

- Photo variants: `media_service.imaging.process_image` on the generated 12 MP and
  1080x1350 JPEGs of `bench/image_pipeline.py`; the four variants' bytes are what S3 keeps
  per photo (the upload itself is discarded).
- Redis, on a redis-server of its own on loopback (`zset-max-listpack-entries 1024`, as in
  `k8s/base/redis-timelines.conf`): a cached post (`post:{id}`, the JSON feed-service
  writes, 1 media item with 4 variants and CDN URLs as in the prod overlay), a home
  timeline written by `TimelineStore.fill` (its default cap of posts + sentinel) and a
  recent-posts list by `TimelineStore.build_recent` (100 + sentinel): `MEMORY USAGE key
  SAMPLES 0` and the growth of `used_memory`, per key. Also the bytes of one Kafka event.
- PostgreSQL (127.0.0.1:55432): `pg_relation_size` of each table and index of the bench
  databases made by `bench/feed_graph.py`, divided by the rows; then the same tables
  re-created as TEMP tables (`LIKE … INCLUDING ALL`) and filled by INSERT in production
  order (IDs rising, other index keys random) with realistic content: argon2id hashes,
  names, captions and the media JSON of the processed photo. Nothing is written to the
  bench tables; the temp tables vanish with the session.

    uv run python bench/storage_sizes.py
    uv run python bench/storage_sizes.py --write-docs docs/operations.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import BENCH_DBS, machine, pg_url, revision, today
from image_pipeline import MAX_PIXELS, make_photo
from photogram_contracts.events import Envelope, FollowCreated, PostCreated
from photogram_contracts.keys import recent_key, timeline_key
from photogram_contracts.schemas import AuthorRead, MediaRead, PostRead
from timeline_memory import own_redis

from media_service.imaging import process_image
from media_service.service import MediaService, variant_key
from photogram_common.ids import EPOCH_MS, IdGenerator
from photogram_common.timelines import TimelineStore
from user_service.passwords import Passwords

HASHER = Passwords().hasher

DOCS_BEGIN = "<!-- storage-sizes:begin -->"
DOCS_END = "<!-- storage-sizes:end -->"
CDN = "https://media.photogram.example"  # PHOTOGRAM_MEDIA_PUBLIC_BASE_URL of the prod overlay
# Assumed content (not measurable here): lengths in characters.
CAPTION, USERNAME, LOCATION = 150, 12, "Lisbon, Portugal"
REDIS_KEYS = 1000
TEMP_ROWS = {"users": 100_000, "follows": 350_000, "posts": 100_000, "media": 100_000}


def variants() -> dict[str, Any]:
    """Process both generated photos; return variant bytes and the 12 MP media row."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sizes-") as tmp:
        for label, (w, h) in {"12mp": (4000, 3000), "1080x1350": (1080, 1350)}.items():
            path = Path(tmp) / f"{label}.jpg"
            path.write_bytes(make_photo(w, h))
            result = process_image(str(path), max_pixels=MAX_PIXELS)
            sizes = {v.name: len(v.data) for v in result.variants}
            out[label] = {
                "input_bytes": path.stat().st_size,
                "variants": sizes,
                "total": sum(sizes.values()),
            }
            if label == "12mp":
                out["_result"] = result
    return out


def media_row(result: Any, media_id: int, user_id: int) -> dict[str, Any]:
    """The media-db row media-service writes for this processed photo."""
    return {
        "id": media_id,
        "user_id": user_id,
        "content_type": result.content_type,
        "width": result.width,
        "height": result.height,
        "blurhash": result.blurhash,
        "variants": {
            v.name: {
                "key": variant_key(media_id, v.name, v.data),
                "width": v.width,
                "height": v.height,
            }
            for v in result.variants
        },
    }


def media_read(row: dict[str, Any]) -> dict[str, Any]:
    """The public view media-service returns with the prod CDN base (what posts keep)."""
    service = MediaService(
        database=None,
        blobs=None,
        ids=None,
        executor=None,  # type: ignore[arg-type]
        max_image_pixels=0,
        public_base_url=CDN,
    )
    return service.media_read(row).model_dump(mode="json")


def post_json(post_id: int, user_id: int, media: dict[str, Any]) -> str:
    """The value feed-service caches under post:{id} (json.dumps of the batch item)."""
    post = PostRead(
        post_id=str(post_id),
        user_id=str(user_id),
        author=AuthorRead(user_id=str(user_id), username="a" * USERNAME),
        caption="c" * CAPTION,
        location=LOCATION,
        created_at="2026-11-25T10:00:00.123Z",
        media=[MediaRead.model_validate(media)],
    )
    return json.dumps(post.model_dump(mode="json"))


async def redis_sizes(url: str, media: dict[str, Any]) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    await client.config_set("zset-max-listpack-entries", 1024)
    rng, ids = random.Random(7), IdGenerator(5)
    store = TimelineStore(client)

    def spread(count: int) -> list[int]:
        """Post IDs made by random workers at random times over the last 30 days."""
        now = int(time.time() * 1000) - EPOCH_MS
        return [
            ((now - rng.randrange(30 * 86_400_000)) << 22) | rng.randrange(1 << 22)
            for _ in range(count)
        ]

    async def measure(kind: str, write: Any) -> dict[str, Any]:
        await client.flushall()
        before = int((await client.info("memory"))["used_memory"])
        keys = [await write(i) for i in range(REDIS_KEYS)]
        after = int((await client.info("memory"))["used_memory"])
        usage = [await client.memory_usage(k, samples=0) for k in keys[::10]]
        encoding = {(await client.object("encoding", k)).decode() for k in keys[::10]}
        members = await client.zcard(keys[0]) if kind != "post" else None
        return {
            "memory_usage": sum(usage) / len(usage),
            "used_memory_growth": (after - before) / REDIS_KEYS,
            "encoding": ",".join(sorted(encoding)),
            "members": members,
        }

    async def timeline(i: int) -> str:
        await store.fill(1_000 + i, spread(store.cap))
        return timeline_key(1_000 + i)

    async def recent(i: int) -> str:
        await store.build_recent(1_000 + i, spread(100))
        return recent_key(1_000 + i)

    sample = ""

    async def post(i: int) -> str:
        nonlocal sample
        post_id = ids.next_id()
        sample = post_json(post_id, ids.next_id(), media)
        await client.set(f"post:{{{post_id}}}", sample, ex=3600)
        return f"post:{{{post_id}}}"

    out = {
        "timeline": await measure("tl", timeline),
        "recent": await measure("rp", recent),
        "post": await measure("post", post),
    }
    out["post"]["json_bytes"] = len(sample.encode())
    out["redis_version"] = (await client.info("server"))["redis_version"]
    await client.flushall()
    await client.aclose()
    events = {
        "post.created": PostCreated(post_id=ids.next_id(), author_id=ids.next_id()),
        "follow.created": FollowCreated(
            follower_id=ids.next_id(), followee_id=ids.next_id(), followee_followers_count=1234
        ),
    }
    out["kafka_events"] = {
        name: {"value": len(Envelope.wrap(e).encode()), "key": len(e.key())}
        for name, e in events.items()
    }
    return out


async def relation_sizes(conn: asyncpg.Connection, table: str) -> dict[str, Any]:
    rows = await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 (our names)
    heap = await conn.fetchval("SELECT pg_relation_size($1::regclass)", table)
    total = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
    indexes = await conn.fetch(
        "SELECT c.relname AS name, pg_relation_size(i.indexrelid) AS bytes FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass ORDER BY 1",
        table,
    )
    per = max(rows, 1)
    return {
        "rows": rows,
        "heap_per_row": heap / per,
        "total_per_row": total / per,
        "indexes_per_row": {r["name"]: r["bytes"] / per for r in indexes},
    }


# @ID@ is a rising ID of today's magnitude (18 digits, as they are in the JSON text);
# @RND@ a random user ID. Production order: IDs rise; names, emails and edges are random.
FILLS = {
    "users": """INSERT INTO sz_users (id, username, email, email_normalized, password_hash,
        first_name, last_name, location, created_at, last_active_at, followers_count,
        following_count, posts_count)
      SELECT @ID@ + 1, left(md5(i::text), $2::int), left(md5(i::text), 12) || '@example.com',
        left(md5(i::text), 12) || '@example.com', $3::text, left(md5('f' || i), 7),
        left(md5('l' || i), 9), $4::text, now(), now(), 40, 40, 12
      FROM generate_series(1, $1::int) i ORDER BY i""",
    "follows": """INSERT INTO sz_follows (follower_id, followee_id, id, created_at)
      SELECT @RND@, @RND@, @ID@ + 7, now()
      FROM generate_series(1, $1::int) i ORDER BY i ON CONFLICT DO NOTHING""",
    "posts": """INSERT INTO sz_posts (id, user_id, author_username, caption, location, created_at)
      SELECT @ID@ + 3, @RND@, left(md5(i::text), $2::int),
        left(repeat(md5(i::text), 20), $3::int), CASE WHEN i % 2 = 0 THEN $4::text END, now()
      FROM generate_series(1, $1::int) i ORDER BY i""",
    "post_media": """INSERT INTO sz_post_media (post_id, position, media_id, media)
      SELECT @ID@ + 3, 0, @ID@ + 9,
        replace(replace($2::text, '@MEDIA@', (@ID@ + 9)::text), '@HASH@', md5(i::text))::json
      FROM generate_series(1, $1::int) i ORDER BY i""",
    "media": """INSERT INTO sz_media (id, user_id, content_type, width, height, blurhash,
        status, variants, created_at)
      SELECT @ID@ + 9, @RND@, 'image/jpeg', $3::int, $4::int, $5::text, 'ready',
        replace(replace($2::text, '@MEDIA@', (@ID@ + 9)::text), '@HASH@', md5(i::text))::json,
        now()
      FROM generate_series(1, $1::int) i ORDER BY i""",
}


def fill_sql(table: str) -> str:
    base = int(time.time() * 1000) - EPOCH_MS
    return (
        FILLS[table]
        .replace("@ID@", f"(({base}::bigint + i) << 22)")
        .replace("@RND@", f"((({base}::bigint - floor(random() * 3e10)::bigint) << 22) + 1)")
    )


def templated(text: str, media_id: int, row: dict[str, Any]) -> str:
    """A JSON text with the media ID and the per-variant hashes as placeholders."""
    for spec in row["variants"].values():
        text = text.replace(spec["key"].rsplit("-", 1)[1][:32], "@HASH@")
    return text.replace(str(media_id), "@MEDIA@")


async def postgres_sizes(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": {}, "realistic": {}}
    pw_hash = HASHER.hash("correct horse battery")  # user-service's own argon2id
    media_id = row["id"]
    post_media_json = templated(json.dumps(media_read(row)), media_id, row)
    media_variants_json = templated(json.dumps(row["variants"]), media_id, row)
    for db, tables in (
        ("users", ("users", "follows")),
        ("posts", ("posts", "post_media")),
        ("media", ("media",)),
    ):
        conn = await asyncpg.connect(pg_url(BENCH_DBS[db]))
        try:
            for table in tables:
                if table != "media":  # the bench's media table has only a few rows
                    out["bench"][table] = await relation_sizes(conn, table)
                await conn.execute(f"CREATE TEMP TABLE sz_{table} (LIKE {table} INCLUDING ALL)")
                n = TEMP_ROWS.get(table, TEMP_ROWS["posts"])
                args: tuple[Any, ...] = {
                    "users": (n, USERNAME, pw_hash, LOCATION),
                    "follows": (n,),
                    "posts": (n, USERNAME, CAPTION, LOCATION),
                    "post_media": (n, post_media_json),
                    "media": (n, media_variants_json, row["width"], row["height"], row["blurhash"]),
                }[table]
                await conn.execute(fill_sql(table), *args)
                out["realistic"][table] = await relation_sizes(conn, f"sz_{table}")
        finally:
            await conn.close()
    out["password_hash_chars"] = len(pw_hash)
    start = time.process_time()
    for _ in range(20):
        HASHER.verify(pw_hash, "correct horse battery")
    out["verify_cpu_ms"] = (time.process_time() - start) / 20 * 1000
    out["post_media_json_bytes"] = len(
        post_media_json.replace("@MEDIA@", str(media_id)).replace("@HASH@", "0" * 32)
    )
    return out


def render(v: dict[str, Any], r: dict[str, Any], pg: dict[str, Any], command: str) -> str:
    lines = [
        DOCS_BEGIN,
        f"Measured {today()} at revision {revision()}, with `{command}`, on",
        f"{machine()}.",
        "",
        "| photo (generated, quality 90) | input | thumbnail | small | medium | large "
        "| stored per photo |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in ("12mp", "1080x1350"):
        s = v[label]["variants"]
        lines.append(
            f"| {label} | {v[label]['input_bytes']:,} B | {s['thumbnail']:,} B "
            f"| {s['small']:,} B | {s['medium']:,} B | {s['large']:,} B "
            f"| **{v[label]['total']:,} B** |"
        )
    lines += [
        "",
        f"Redis {r['redis_version']}, zset-max-listpack-entries 1024, {REDIS_KEYS} "
        "keys of each kind:",
        "",
        "| key | written by | members | encoding | MEMORY USAGE | used_memory growth |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for name, key, writer in (
        ("timeline", "tl2:{…}", f"`TimelineStore.fill` ({r['timeline']['members'] - 1} posts)"),
        ("recent", "rp2:{…}", "`TimelineStore.build_recent` (100)"),
        ("post", "post:{…}", "`SET … EX 3600` of the post JSON"),
    ):
        f = r[name]
        members = f["members"] if f["members"] is not None else f"{f['json_bytes']:,} B JSON"
        lines.append(
            f"| `{key}` | {writer} | {members} | {f['encoding']} "
            f"| **{f['memory_usage']:,.0f} B** | {f['used_memory_growth']:,.0f} B |"
        )
    kafka = "; ".join(
        f"`{name}` value {k['value']} B, key {k['key']} B" for name, k in r["kafka_events"].items()
    )
    lines += [
        "",
        f"Kafka events (the outbox's JSON envelope): {kafka}.",
        "",
        "PostgreSQL, bytes per row (heap; each index; total incl. TOAST):",
        "",
        "| table | data | rows | heap | indexes | total |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    for source, label in (("bench", "bench (feed_graph.py)"), ("realistic", "realistic, INSERT")):
        for table, f in pg[source].items():
            idx = ", ".join(
                f"{n.removeprefix('sz_')} {b:.1f}" for n, b in f["indexes_per_row"].items()
            )
            lines.append(
                f"| {table} | {label} | {f['rows']:,} | {f['heap_per_row']:.1f} "
                f"| {idx} | **{f['total_per_row']:.1f}** |"
            )
    lines += [
        "",
        f"Realistic rows: argon2id hash ({pg['password_hash_chars']} chars), "
        f"{USERNAME}-char usernames, captions of {CAPTION} chars, location on half the "
        f"posts, post_media JSON {pg['post_media_json_bytes']} B (1 media, 4 CDN URLs).",
        "",
        "A login's argon2id verify (user-service's `Passwords` at its default cost):"
        f" {pg['verify_cpu_ms']:.1f} ms CPU.",
        DOCS_END,
    ]
    return "\n".join(lines)


def write_docs(path: Path, block: str) -> None:
    text = path.read_text()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        sys.exit(f"{path} has no {DOCS_BEGIN} … {DOCS_END} block to replace")
    head, rest = text.split(DOCS_BEGIN, 1)
    path.write_text(head + block + rest.split(DOCS_END, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", type=Path, help="replace the figures block in this file")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    command = " ".join(["uv run python bench/storage_sizes.py", *sys.argv[1:]])
    v = variants()
    result = v.pop("_result")
    ids = IdGenerator(9)
    row = media_row(result, ids.next_id(), ids.next_id())
    with own_redis() as url:
        r = asyncio.run(redis_sizes(url, media_read(row)))
    pg = asyncio.run(postgres_sizes(row))
    block = render(v, r, pg, command)
    print(block)
    if args.json:
        args.json.write_text(json.dumps({"variants": v, "redis": r, "postgres": pg}, indent=2))
    if args.write_docs:
        write_docs(args.write_docs, block)


if __name__ == "__main__":
    main()
