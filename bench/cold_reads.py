# ruff: noqa: S603, S607 (a bench: local processes, run once, by hand)
"""What a feed read costs when Redis holds nothing for its reader: before and after, one run.

    uv run python bench/cold_reads.py --readers 800 --concurrency 8 --rounds 2 \
        --variants current,cap-100 [--before REV]

On `bench/feed_graph.py`'s data (reused as `bench/bench_feed.py` does), the distributed
mode on the bench's stores and Redis: for each variant in turn (`--rounds` times, ABAB),
the services are started with the variant's environment on an empty Redis and every
sampled reader's feed is read once, closed loop, `--concurrency` at a time (a 503 is
tried again after its Retry-After, as `bench_feed.warm` does). Every read is then a cold
one, as after a lost Redis: no timeline, follow set, liked set, cached body or counts.
Reported per variant and round: first reads served per second, p50/p99, 503s, and the CPU
of every process of the system (services, PostgreSQL, Redis, Kafka) per read served.

`--before REV` adds a variant `before`: the same system run from a `git worktree` of REV
(its packages ahead of this checkout's on PYTHONPATH), for a change's before/after in one run.

`--profile DIR` records the services with py-spy during the first round of each variant
(raw stacks, one file per process and variant).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feed import (
    REPO,
    BenchRedis,
    CpuWindow,
    Photogram,
    cpu_figures,
    ensure_data,
    sample_readers,
    warm,
)
from benchlib import bench_lock, machine, revision, today

# The environment of each variant, over the bench's own (bench_feed.system_env).
VARIANTS: dict[str, dict[str, str]] = {
    "current": {},
    # What a timeline of 100 costs to build against one of 800 (an estimate, not a mode).
    "cap-100": {"PHOTOGRAM_TIMELINE_CAP": "100"},
}
PROFILED = ("gateway", "feed-service", "user-service", "post-service")
# The services whose requests are counted per read, by route (their /metrics).
COUNTED = {"user-service": 8101, "post-service": 8102}
# Label values may hold braces (route templates): the labels run to the last "} ".
REQUESTS = re.compile(r"^photogram_http_requests_total\{(.*)\} (\S+)$", re.MULTILINE)
LABEL = re.compile(r'(\w+)="([^"]*)"')
# The directories that hold the workspace's importable packages.
PACKAGES = (
    "contracts",
    "common",
    "gateway",
    "user-service",
    "post-service",
    "media-service",
    "feed-service",
    "fanout-worker",
    "notification-service",
    "runner",
    "admin",
)


def worktree(rev: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="cold-reads-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), rev],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return path


def before_variant(tree: Path) -> dict[str, str]:
    """The environment that runs the services from `tree` instead of this checkout."""
    return {"PYTHONPATH": os.pathsep.join(str(tree / p) for p in PACKAGES)}


def one_round(name: str, overrides: dict[str, str], readers: list[dict], args, index: int) -> dict:
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    system = Photogram()
    try:
        system.start()
        time.sleep(2)
        spies: list[subprocess.Popen] = []
        if args.profile and index == 0:
            args.profile.mkdir(parents=True, exist_ok=True)
            for pid, process in system.own_processes().items():
                if process in PROFILED:
                    out = args.profile / f"{name}-{process}.txt"
                    spies.append(
                        subprocess.Popen(
                            [
                                "py-spy",
                                "record",
                                "--pid",
                                str(pid),
                                "--rate",
                                "50",
                                "--nonblocking",
                                "--format",
                                "raw",
                                "-o",
                                str(out),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
        cpu = CpuWindow(system.processes)
        cpu.start()
        figures, warmed = asyncio.run(warm(system.url, readers, args.concurrency))
        used = cpu.stop()
        calls = requests_by_route()
        for spy in spies:
            spy.send_signal(2)
        for spy in spies:
            spy.wait(30)
    finally:
        system.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {
        "variant": name,
        "round": index + 1,
        "first_reads_per_s": round(len(warmed) / figures["elapsed_s"], 1),
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "served": len(warmed),
        "status_503": figures["errors"].get("503", 0),
        **cpu_figures(used, len(warmed)),
        # Whole run: the warm-up's own reads only (nothing else calls them).
        "requests_per_read": {
            f"{service} {route}": round(n / max(1, len(warmed)), 2)
            for service, routes in calls.items()
            for route, n in sorted(routes.items(), key=lambda kv: -kv[1])
        },
    }


def requests_by_route() -> dict[str, dict[str, float]]:
    """Requests served so far by each counted service, by method and route."""
    found: dict[str, dict[str, float]] = {}
    for service, port in COUNTED.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        routes: dict[str, float] = {}
        for labels, value in REQUESTS.findall(text):
            label = dict(LABEL.findall(labels))
            if label["route"] not in ("/metrics", "/healthz", "/readyz"):
                key = f"{label['method']} {label['route']}"
                routes[key] = routes.get(key, 0) + float(value)
        found[service] = routes
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--readers", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="current", help=", ".join(VARIANTS))
    parser.add_argument("--before", help="also run this revision's services (a worktree)")
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks into this directory")
    parser.add_argument("--json", type=Path, default=REPO / "docs/bench/cold-reads.json")
    args = parser.parse_args()
    variants = {name: VARIANTS[name] for name in args.variants.split(",")}
    tree = worktree(args.before) if args.before else None
    if tree is not None:
        variants = {"before": before_variant(tree), **variants}
    started = time.monotonic()
    try:
        measure(args, variants, started)
    finally:
        if tree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False
            )


def measure(args, variants: dict[str, dict[str, str]], started: float) -> None:
    with bench_lock("cold reads"):
        summary, _ = ensure_data(args.users, [])
        readers, profile = asyncio.run(sample_readers(args.readers, ttl_seconds=6 * 3600))
        runs = []
        with BenchRedis():
            for index in range(args.rounds):
                for name, overrides in variants.items():
                    runs.append(one_round(name, overrides, readers, args, index))
                    print(json.dumps(runs[-1]), flush=True)
    result = {
        "when": today(),
        "machine": machine(),
        "revision": revision(),
        "command": "python bench/cold_reads.py " + " ".join(sys.argv[1:]),
        "graph": summary,
        "reader_sample": profile,
        "before": args.before,
        "variants": {
            name: {"PYTHONPATH": f"a worktree of {args.before}"} if name == "before" else env
            for name, env in variants.items()
        },
        "runs": runs,
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{'variant':>14} {'round':>5} {'reads/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'503s':>5} {'cpu ms':>7}  by process"
    )
    for run in runs:
        top = ", ".join(
            f"{k} {v}" for k, v in list(run["cpu_ms_per_request_by_process"].items())[:6]
        )
        print(
            f"{run['variant']:>14} {run['round']:>5} {run['first_reads_per_s']:>8} "
            f"{run['p50_ms']:>8} {run['p99_ms']:>8} {run['status_503']:>5} "
            f"{run['cpu_ms_per_request']:>7}  {top}"
        )
    print(json.dumps({"runs": len(runs), "json": str(args.json), "wall_s": result["wall_s"]}))


if __name__ == "__main__":
    main()
