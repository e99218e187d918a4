# ruff: noqa: S603, S607 (a bench: local processes, run once, by hand)
"""Past the knee with the load generator on a core of its own: the stack pinned to the other.

On this machine's two cores the load generator shares the cores with the system it loads,
and past the knee it runs behind its schedule, which a latency counted from the schedule
adds to every read (docs/benchmarks.md (d)). This bench separates the two: every process
of the stack (the six services, PostgreSQL, Redis, Kafka, SeaweedFS) is pinned to CPU 0
(`taskset`), the generator runs on CPU 1 alone. On that one core it searches Photogram's
knee as `make bench-feed` does (the highest open-loop rate with p99 <= 100 ms and no
error, `bench_feed.Search`: x`--step` from `--start` until a failure, then bisection to
`--precision`, 5 %; a trial failed by at most 1 % errors is run once more), then loads
twice that rate for `--knee-seconds` and reports the served reads' p99 against the knee's.
`--rounds` repeats the whole search; `--variant NAME:K=V,...` (repeated) runs it with
each set of settings in turn within a round, the stack brought up afresh for each. The
affinities are restored at the end.

Needs built timelines for the readers of `.backends/bench/readers.json` in the bench's
Redis database, which `feed_reads.py --keep-up` leaves:

    uv run python bench/feed_reads.py --rates 300 --baseline-rates 20 --seconds 5 \
        --readers 1500 --keep-up
    uv run python bench/knee_pinned.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feed import Search, passed
from benchlib import BENCH_RUN_DIR, bench_env, machine, revision, runner, today
from shedding_ab import load

HERE = Path(__file__).resolve().parent
# The backends' processes, by the name of their executable (scripts/backends.sh).
BACKEND_NAMES = ("postgres", "redis-server", "java", "weed")
SYSTEM_CPU, GENERATOR_CPU = "0", "1"
PIN_GENERATOR = ("taskset", "-c", GENERATOR_CPU)
P99_MS = 100.0  # the knee's criterion, as make bench-feed's


def stack_pids() -> list[int]:
    """The pids of the services (their pid files) and of the backends (by executable)."""
    pids = []
    for pid_file in (BENCH_RUN_DIR / "services").glob("*.pid"):
        try:
            pids.append(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            continue
    for name in BACKEND_NAMES:
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
        pids += [int(p) for p in found.split()]
    return sorted(set(pids))


def pin(pids: list[int], cpus: str) -> None:
    """Every thread of each process onto `cpus` (a process gone meanwhile is skipped)."""
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True)


def trial(rate: float, seconds: float, readers: Path, env: dict[str, str]) -> dict:
    """One load from the generator's core (`shedding_ab.load`), printed as it ends."""
    figures = {"seconds": seconds, **load(rate, seconds, readers, env, prefix=PIN_GENERATOR)}
    print(json.dumps(figures), flush=True)
    return figures


def narrow(figures: dict) -> bool:
    """Failed by at most 1 % errors: run once more before the rate counts as failed, as
    `bench_feed.py` does (`--retries`)."""
    return sum(figures["errors"].values()) <= 0.01 * max(figures["sent"], 1)


def search(args: argparse.Namespace, env: dict[str, str]) -> dict:
    """The knee (`bench_feed.Search`: the highest passing rate), its trial, every trial,
    and twice the knee."""
    found = Search(args.start, precision=args.precision, max_rate=math.inf, step=args.step)
    while (rate := found.next_rate()) is not None:
        for again in (False, True):
            time.sleep(2)
            figures = trial(rate, args.seconds, args.readers_file, env)
            ok = passed(figures, P99_MS)
            if ok or again or not narrow(figures):
                break
            found.retried(rate, figures)
        found.record(rate, ok, figures)
    knee = next(
        (t for t in reversed(found.trials) if t["rate"] == found.low and passed(t, P99_MS)), None
    )
    if knee is None:
        raise SystemExit(f"no rate passed from {args.start}/s down")
    time.sleep(2)
    past = trial(round(knee["rate"] * 2, 1), args.knee_seconds, args.readers_file, env)
    return {
        "knee_rps": knee["rate"],
        "knee": knee,
        "past_the_knee": past,
        "served_p99_vs_knee_p99": round(past["p99_ms"] / knee["p99_ms"], 2),
        "trials": found.trials,
    }


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`NAME:K=V,K=V` (or `NAME:` for the defaults) as a name and its settings."""
    name, _, pairs = text.partition(":")
    return name, dict(pair.split("=", 1) for pair in pairs.split(",") if pair)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=float, default=200.0)
    parser.add_argument("--step", type=float, default=1.25)
    parser.add_argument("--precision", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--knee-seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:K=V,...",
        help="settings to search with, in turn each round (default: the defaults alone)",
    )
    parser.add_argument("--readers-file", type=Path, default=BENCH_RUN_DIR / "readers.json")
    parser.add_argument("--json", type=Path, default=HERE.parent / "docs/bench/knee-pinned.json")
    args = parser.parse_args()
    if os.cpu_count() != 2:
        raise SystemExit("written for a two-core machine: one for the stack, one for the load")
    if not args.readers_file.exists():
        raise SystemExit(f"{args.readers_file} is missing: run feed_reads.py --keep-up first")
    variants = dict(parse_variant(v) for v in args.variant) or {"defaults": {}}
    started = time.monotonic()
    rounds = []
    try:
        for number in range(args.rounds):
            for name, overrides in variants.items():
                env = bench_env() | overrides
                runner("down", env)
                runner("up", env)
                pin(stack_pids(), SYSTEM_CPU)
                time.sleep(3)
                trial(100, 3, args.readers_file, env)  # connections and caches, not counted
                rounds.append({"round": number + 1, "variant": name, **search(args, env)})
                past = rounds[-1]["past_the_knee"]
                print(
                    f"[pinned] round {number + 1}, {name}: knee {rounds[-1]['knee_rps']}/s, p99 "
                    f"{rounds[-1]['knee']['p99_ms']} ms; twice it: {past['served_per_s']} "
                    f"served/s, p99 {past['p99_ms']} ms ({rounds[-1]['served_p99_vs_knee_p99']}x)",
                    flush=True,
                )
    finally:
        pin(stack_pids(), "0-1")
        runner("down", bench_env())
    result = {
        "when": today(),
        "machine": machine(),
        "revision": revision(),
        "command": "python bench/knee_pinned.py " + " ".join(sys.argv[1:]),
        "stack_cpu": SYSTEM_CPU,
        "generator_cpu": GENERATOR_CPU,
        "variants": variants,
        "rounds": rounds,
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps([[r["round"], r["variant"], r["served_p99_vs_knee_p99"]] for r in rounds]))


if __name__ == "__main__":
    main()
