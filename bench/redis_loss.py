"""Redis loss under load: Photogram's feed reads before and after its Redis database is flushed.

    make bench-redis-loss                    # BENCH_USERS=100000 by default
    uv run python bench/redis_loss.py --users 100000 [--readers 100000] [--rate R]

On `bench/feed_graph.py`'s data (reused or generated as `bench/bench_feed.py` does), with
the distributed mode on the bench's stores and a Redis of the bench's own (see
`bench_feed.BenchRedis`): the services are started and every sampled reader's feed read
once (closed loop), so that all of them are active readers with a built timeline.
Then one open-loop load at `--rate` (default: half of the maximum rate in
`docs/bench/feed-<users>.json`, which `bench/bench_feed.py` writes), readers drawn at
random from the sample; `--before` seconds into it the load generator sends `FLUSHDB`
to that Redis (the bench's alone) and the load goes on for `--after` seconds. Every
timeline, follow set, author list, cached post and rebuild lock is gone at once; each
reader's next read rebuilds from PostgreSQL.

With `--warm N` only the first N sampled readers are warmed (a first read each takes a
rebuild: 100,000 would take most of an hour here); the load reads only them before the
flush and every sampled reader after it. After a flush no reader has a timeline, follow
set or cached post, warmed or not, so from then on the run is the one with all of them
active.

Reported: the pre-flush normal (p50/p99 of the last `--before` - 5 seconds before the
flush), then per `--bucket` (5) seconds after it, by scheduled time: requests, served,
errors by kind, p50/p99 of the served, and the keys in the Redis database; and the
recovery time: the start of the first bucket from which `--stable` (3) buckets in a row
have no error and a p99 within `--tolerance` (1.25x, at least +5 ms) of the normal.
Writes the figures to `docs/bench/redis-loss-<users>.json`; the last line printed is one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feed import (
    BENCH_RUN_DIR,
    REPO,
    BenchRedis,
    Photogram,
    ensure_data,
    sample_readers,
    settle,
    summarize,
    trial,
    warm,
)
from benchlib import bench_lock, machine, percentile, revision, today


def buckets_after(
    requests: list[list], flush_at: float, width: float, samples: list[list]
) -> list[dict]:
    """Per-bucket figures of the requests scheduled after the flush."""
    grouped: dict[int, list[tuple[float, str]]] = {}
    for offset, latency, status in requests:
        if offset >= flush_at:
            grouped.setdefault(int((offset - flush_at) // width), []).append((latency, status))
    keys: dict[int, int] = {}
    for offset, size in samples:
        if offset >= flush_at:
            keys[int((offset - flush_at) // width)] = size
    out = []
    for index in range(max(grouped) + 1 if grouped else 0):
        rows = grouped.get(index, [])
        ok = [latency for latency, status in rows if status == "200"]
        errors: dict[str, int] = {}
        for _, status in rows:
            if status != "200":
                errors[status] = errors.get(status, 0) + 1
        out.append(
            {
                "from_s": round(index * width, 1),
                "to_s": round((index + 1) * width, 1),
                "sent": len(rows),
                "ok": len(ok),
                "errors": errors,
                "p50_ms": round(percentile(ok, 50) * 1000, 1) if ok else None,
                "p99_ms": round(percentile(ok, 99) * 1000, 1) if ok else None,
                "redis_keys_at_end": keys.get(index),
            }
        )
    return out


def recovery(buckets: list[dict], limit_ms: float, stable: int) -> float | None:
    """Start of the first bucket from which `stable` buckets in a row are back to normal."""

    def normal(bucket: dict) -> bool:
        return (
            bool(bucket["sent"])
            and not bucket["errors"]
            and bucket["p99_ms"] is not None
            and bucket["p99_ms"] <= limit_ms
        )

    for index in range(len(buckets) - stable + 1):
        if all(normal(b) for b in buckets[index : index + stable]):
            return buckets[index]["from_s"]
    return None


def measure(
    system: Photogram,
    args: argparse.Namespace,
    rate: float,
    readers: list[dict],
    readers_file: Path,
    records_file: Path,
) -> dict:
    """Start Photogram, build every reader's timeline, then the load with its flush."""
    system.start()
    try:
        to_warm = readers[: args.warm] if args.warm else readers
        print(f"[loss] building {len(to_warm):,} timelines: one read each", flush=True)
        system.warm_figures, warmed = asyncio.run(warm(system.url, to_warm, args.warm_concurrency))
        print(f"[loss] warm-up: {json.dumps(system.warm_figures)}", flush=True)
        if not warmed:
            raise SystemExit("no reader's feed could be read: Photogram's feed fails")
        extra: tuple[str, ...] = ()
        if len(warmed) < len(readers):
            # Before the flush only readers with a built timeline are read.
            readers_file.write_text(json.dumps(warmed))
            print(f"[loss] {len(to_warm) - len(warmed)} first reads failed", flush=True)
        if len(to_warm) < len(readers):
            # After it no reader has a timeline: every sampled reader is read then.
            everyone = readers_file.with_name("readers-loss-all.json")
            everyone.write_text(json.dumps(readers))
            extra = ("--readers-after-file", str(everyone))
        settle(system, args.pause)
        print(
            f"[loss] {rate}/s for {args.before + args.after:.0f} s, FLUSHDB at {args.before:.0f} s",
            flush=True,
        )
        return trial(
            system,
            rate,
            args.before + args.after,
            readers_file,
            timeout=args.timeout,
            extra=("--flush-at", str(args.before), "--records", str(records_file), *extra),
        )
    finally:
        system.stop()


def default_rate(users: int) -> float:
    path = REPO / "docs" / "bench" / f"feed-{users}.json"
    try:
        top = json.loads(path.read_text())["headline"]["photogram_max_rps"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"no --rate and no Photogram maximum in {path}: run bench-feed") from exc
    if not top:
        raise SystemExit(f"{path} has no Photogram maximum rate: pass --rate")
    return round(top / 2, 1)


def run_all(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    rate = args.rate or default_rate(args.users)
    summary, generated_s = ensure_data(args.users, [])
    readers, profile = asyncio.run(
        sample_readers(args.readers or min(args.users, 100_000), ttl_seconds=12 * 3600)
    )
    readers_file = BENCH_RUN_DIR / "readers-loss.json"
    readers_file.write_text(json.dumps(readers))
    records_file = BENCH_RUN_DIR / "redis-loss-records.json"
    print(f"[loss] {len(readers):,} readers at {rate}/s: {json.dumps(profile)}", flush=True)
    figures: dict[str, Any] = {
        "when": today(),
        "machine": machine(),
        "revision": revision(),
        "command": "python bench/redis_loss.py " + " ".join(sys.argv[1:]),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "graph": summary,
        "generated_in_s": generated_s,
        "reader_sample": profile,
        "rate": rate,
    }
    system = Photogram()
    with BenchRedis():
        run = measure(system, args, rate, readers, readers_file, records_file)
    figures["warm_first_reads"] = system.warm_figures
    data = json.loads(records_file.read_text())
    flush_at = data["hook_at_s"]
    if flush_at is None:
        raise SystemExit("the flush did not happen")
    pre = [r for r in data["requests"] if 5.0 <= r[0] < flush_at]
    normal = summarize([tuple(r) for r in pre], rate, flush_at - 5.0)
    limit = max(normal["p99_ms"] * args.tolerance, normal["p99_ms"] + 5.0)
    buckets = buckets_after(data["requests"], flush_at, args.bucket, data["samples"])
    back = recovery(buckets, limit, args.stable)
    figures.update(
        {
            "flush_at_s": flush_at,
            "before_flush": normal,
            "normal_p99_limit_ms": round(limit, 1),
            "buckets_after_flush": buckets,
            "recovered_after_s": back,
            "observed_after_s": args.after,
            "whole_run": run,
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(time.perf_counter() - started, 1),
        }
    )
    print(
        f"[loss] before the flush: p50 {normal['p50_ms']} ms, p99 {normal['p99_ms']} ms, "
        f"errors {sum(normal['errors'].values())}; back to normal = p99 <= {limit:.1f} ms, "
        f"no errors, {args.stable} buckets in a row",
        flush=True,
    )
    for bucket in buckets[: math.ceil(args.report_s / args.bucket)]:
        print(
            f"[loss] +{bucket['from_s']:5.0f}-{bucket['to_s']:3.0f} s: {bucket['ok']:5}/"
            f"{bucket['sent']:5} served, p50 {bucket['p50_ms']} ms, p99 {bucket['p99_ms']} ms, "
            f"errors {json.dumps(bucket['errors'])}, Redis keys {bucket['redis_keys_at_end']}",
            flush=True,
        )
    out = Path(args.json or REPO / "docs" / "bench" / f"redis-loss-{args.users}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    first_minute = buckets[: math.ceil(60 / args.bucket)]
    headline = {
        "users": args.users,
        "readers": len(readers),
        "warmed_before_flush": min(args.warm or len(readers), len(readers)),
        "rate": rate,
        "normal_p99_ms": normal["p99_ms"],
        "first_minute_errors": sum(sum(b["errors"].values()) for b in first_minute),
        "first_minute_worst_p99_ms": max(
            (b["p99_ms"] for b in first_minute if b["p99_ms"] is not None), default=None
        ),
        "recovered_after_s": back,
        "observed_after_s": args.after,
    }
    print(f"[loss] figures written to {out}", flush=True)
    print(json.dumps(headline))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=int(os.environ.get("BENCH_USERS", 100_000)))
    parser.add_argument(
        "--readers", type=int, help="active readers (default: every user, at most 100,000)"
    )
    parser.add_argument("--rate", type=float, help="reads/s (default: half the measured max)")
    parser.add_argument("--before", type=float, default=30.0)
    parser.add_argument("--after", type=float, default=300.0)
    parser.add_argument("--bucket", type=float, default=5.0)
    parser.add_argument("--report-s", type=float, default=60.0, help="buckets printed")
    parser.add_argument("--tolerance", type=float, default=1.25)
    parser.add_argument("--stable", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument(
        "--warm",
        type=int,
        help="readers whose timelines are built before the load (default: all); the "
        "load reads only those before the flush and every sampled reader after it",
    )
    parser.add_argument("--warm-concurrency", type=int, default=16)
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument("--json", help="where to write the figures")
    args = parser.parse_args()

    with bench_lock("redis_loss.py"):
        run_all(args)


if __name__ == "__main__":
    main()
