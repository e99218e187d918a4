# ruff: noqa: S603, ASYNC240 (a bench: local processes, run once, by hand)
"""Feed-read benchmark: GET /api/feed through the gateway under open-loop load.

Needs the data of `bench/feed_graph.py`. Starts the distributed mode on the bench's own
stores (`python -m photogram_runner up` with the bench environment: its databases, Redis
database 6, Kafka topic prefix `bench.`, rate limiting off), flushes the bench's Redis
database so every timeline starts unbuilt, then:

1. warm-up: reads each sampled reader's feed once (closed loop, 8 at a time, a 503 tried
   again after its Retry-After: `bench_feed.warm`); that first read rebuilds the reader's
   timeline from PostgreSQL, and its latency is reported too;
2. for each rate R: an open-loop load generator in a separate process sends GET /api/feed
   at a fixed arrival rate for T seconds, request i scheduled at t0 + i/R, and counts each
   latency from the scheduled time (so time spent queueing in the generator counts);
   readers are drawn at random from the sample, with access tokens minted with the JWT
   secret (no logins);
3. the baseline at the same rates, in the same run: the pull query a typical app would use
   (newest 20 posts of the reader's followees, with their media rows) straight on the same
   PostgreSQL data with asyncpg (8 connections), no HTTP in front;
4. optionally (`--direct`), the feed-service alone (no gateway hop) at one rate.

Everything shares the machine's cores: the six services, PostgreSQL, Redis, Kafka and the
load generator.

    uv run python bench/feed_reads.py [--rates 100,200,400] [--seconds 20] [--readers 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feed import warm
from benchlib import (
    BENCH_DBS,
    BENCH_REDIS_DB,
    BENCH_RUN_DIR,
    REDIS_BASE,
    bench_env,
    bench_lock,
    jwt_secret,
    machine,
    percentile,
    pg_url,
    revision,
    runner,
    today,
)

GATEWAY = "http://127.0.0.1:8000"
FEED_SERVICE = "http://127.0.0.1:8104"
REQUEST_TIMEOUT = 15.0

PULL_QUERY = """
WITH page AS (
    SELECT id, user_id, author_username, caption, location, created_at
    FROM posts
    WHERE user_id IN (SELECT followee_id FROM bench_follows WHERE follower_id = $1)
      AND deleted_at IS NULL
    ORDER BY id DESC
    LIMIT 20
)
SELECT page.*, pm.media FROM page LEFT JOIN post_media pm ON pm.post_id = page.id
ORDER BY page.id DESC, pm.position
"""


def summary(
    latencies: list[float], errors: dict[str, int], sent: int, elapsed: float, items: list[int]
) -> dict:
    ok = len(latencies)
    return {
        "sent": sent,
        "ok": ok,
        "errors": errors,
        "elapsed_s": round(elapsed, 2),
        "throughput": round(ok / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p90_ms": round(percentile(latencies, 90) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "mean_items": round(sum(items) / len(items), 1) if items else 0,
    }


# --------------------------------------------------------------------------- load generator


async def open_loop(rate: float, seconds: float, do_one) -> dict:
    """Fire do_one() at a fixed arrival rate; latency counted from each scheduled time."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    items: list[int] = []
    errors: dict[str, int] = {}
    total = int(rate * seconds)
    tasks = []

    async def one(scheduled: float) -> None:
        try:
            count = await asyncio.wait_for(do_one(), REQUEST_TIMEOUT)
        except Exception as exc:
            kind = type(exc).__name__ if not isinstance(exc, StatusError) else str(exc)
            errors[kind] = errors.get(kind, 0) + 1
            return
        latencies.append(loop.time() - scheduled)
        items.append(count)

    t0 = loop.time() + 0.2
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return summary(latencies, errors, total, loop.time() - t0, items)


class StatusError(Exception):
    pass


async def generate(args: argparse.Namespace) -> None:
    readers = json.loads(Path(args.readers_file).read_text())
    rng = random.Random(args.rate)
    if args.generate == "pg":
        import asyncpg

        pool = await asyncpg.create_pool(pg_url(BENCH_DBS["posts"]), min_size=8, max_size=8)

        async def do_one() -> int:
            user_id = int(rng.choice(readers)["user_id"])
            async with pool.acquire() as conn:
                rows = await conn.fetch(PULL_QUERY, user_id)
            return len(rows)

        try:
            result = await open_loop(args.rate, args.seconds, do_one)
        finally:
            await pool.close()
    else:
        import aiohttp
        from photogram_contracts.identity import Identity

        from photogram_common.identity import issue_internal_token

        internal = (BENCH_RUN_DIR / "services" / ".internal_secret").read_text().strip()
        base = GATEWAY if args.generate == "gateway" else FEED_SERVICE
        connector = aiohttp.TCPConnector(limit=1000, limit_per_host=1000)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def do_one() -> int:
                reader = rng.choice(readers)
                if args.generate == "gateway":
                    headers = {"Authorization": f"Bearer {reader['token']}"}
                    url = f"{base}/api/feed"
                else:
                    who = Identity(user_id=int(reader["user_id"]), username=reader["username"])
                    headers = {
                        "x-photogram-identity": issue_internal_token(secret=internal, identity=who)
                    }
                    url = f"{base}/feed"
                async with http.get(url, headers=headers) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise StatusError(f"HTTP {response.status}")
                return len(json.loads(body)["items"])

            result = await open_loop(args.rate, args.seconds, do_one)
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["generator_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    print(json.dumps(result))


# --------------------------------------------------------------------------- orchestration


SERVICE_NAMES = ("gateway", "feed-service", "user-service", "post-service")


def service_cpu() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each running service process."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for name in SERVICE_NAMES:
        pid_file = BENCH_RUN_DIR / "services" / f"{name}.pid"
        try:
            fields = (
                Path(f"/proc/{pid_file.read_text().strip()}/stat")
                .read_text()
                .rsplit(")", 1)[1]
                .split()
            )
        except OSError:
            continue
        found[name] = (int(fields[11]) + int(fields[12])) / tick
    return found


def run_generator(target: str, rate: float, seconds: float, readers_file: Path) -> dict:
    before = service_cpu()
    result = _run_generator(target, rate, seconds, readers_file)
    after = service_cpu()
    if target != "pg" and result["ok"]:
        # Each service's CPU per successful request: where a feed read's time goes.
        result["cpu_ms_per_request"] = {
            name: round((after[name] - before[name]) * 1000 / result["ok"], 2) for name in after
        }
    return result


def _run_generator(target: str, rate: float, seconds: float, readers_file: Path) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--generate",
            target,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--readers-file",
            str(readers_file),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=bench_env(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def sample_readers(count: int) -> list[dict]:
    import asyncpg
    from photogram_contracts.identity import Identity

    from photogram_common.identity import issue_access_token

    conn = await asyncpg.connect(pg_url(BENCH_DBS["users"]))
    rows = await conn.fetch(
        "SELECT id, username, following_count FROM users WHERE following_count > 0 "
        "ORDER BY random() LIMIT $1",
        count,
    )
    await conn.close()
    secret = jwt_secret()
    return [
        {
            "user_id": str(r["id"]),
            "username": r["username"],
            "following": r["following_count"],
            "token": issue_access_token(
                secret=secret, identity=Identity(r["id"], r["username"]), ttl_seconds=3600
            ),
        }
        for r in rows
    ]


async def flush_bench_redis() -> None:
    import redis.asyncio as aioredis

    redis = aioredis.from_url(f"{REDIS_BASE}{BENCH_REDIS_DB}")
    await redis.flushdb()
    await redis.aclose()


def orchestrate(args: argparse.Namespace) -> None:
    env = bench_env()
    graph = json.loads((BENCH_RUN_DIR / "graph.json").read_text())
    rates = [float(r) for r in args.rates.split(",")]
    figures: dict = {
        "when": today(),
        "machine": machine(),
        "graph": graph,
        "loadavg_at_start": os.getloadavg(),
        "revision": revision(),
        "command": "uv run python bench/feed_reads.py " + " ".join(sys.argv[1:]),
        "seconds": args.seconds,
        "readers": args.readers,
    }
    asyncio.run(flush_bench_redis())
    runner("up", env)
    try:
        readers = asyncio.run(sample_readers(args.readers))
        readers_file = BENCH_RUN_DIR / "readers.json"
        readers_file.write_text(json.dumps(readers))
        print(
            f"[feed] {len(readers)} readers; warming (first read rebuilds each timeline)",
            flush=True,
        )
        # bench_feed's warm-up: a 503 (the gateway's feed bound is below these 8 at a
        # time) is tried again after its Retry-After, so that every reader gets built.
        figures["cold_first_read"], _ = asyncio.run(warm(f"{GATEWAY}/api/feed", readers, 8))
        print(f"[feed] cold first reads: {figures['cold_first_read']}", flush=True)
        figures["warm_closed_loop"], _ = asyncio.run(warm(f"{GATEWAY}/api/feed", readers, 8))
        print(
            f"[feed] warm closed-loop reads (8 at a time): {figures['warm_closed_loop']}",
            flush=True,
        )
        figures["gateway"] = {}
        figures["pull_baseline"] = {}
        for rate in rates:
            result = run_generator("gateway", rate, args.seconds, readers_file)
            figures["gateway"][str(int(rate))] = result
            print(f"[feed] gateway  R={rate:g}/s: {result}", flush=True)
            time.sleep(2)
        if args.direct:
            rate = float(args.direct)
            result = run_generator("feed", rate, args.seconds, readers_file)
            figures["feed_service_direct"] = {str(int(rate)): result}
            print(f"[feed] feed-service direct R={rate:g}/s: {result}", flush=True)
        for rate in [float(r) for r in (args.baseline_rates or args.rates).split(",")]:
            result = run_generator("pg", rate, args.seconds, readers_file)
            figures["pull_baseline"][str(int(rate))] = result
            print(f"[feed] pull SQL R={rate:g}/s: {result}", flush=True)
            time.sleep(1)
    finally:
        if not args.keep_up:
            runner("down", env)
    figures["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="100,200,400")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--baseline-rates", help="rates of the pull baseline (default: --rates)")
    parser.add_argument("--direct", help="also load feed-service alone at this rate")
    parser.add_argument("--keep-up", action="store_true", help="leave the services running")
    parser.add_argument("--json", help="write the figures here too")
    # The load generator's own process (internal).
    parser.add_argument("--generate", choices=["gateway", "feed", "pg"])
    parser.add_argument("--rate", type=float)
    parser.add_argument("--readers-file")
    args = parser.parse_args()
    if args.generate:
        asyncio.run(generate(args))
    else:
        with bench_lock("feed_reads.py"):
            orchestrate(args)


if __name__ == "__main__":
    main()
