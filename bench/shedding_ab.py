# ruff: noqa: S603 (a bench: local processes, run once, by hand)
"""The feed's in-flight bound at the gateway: before and after, on one stack, in one run.

"before" is the general bound alone (64 requests in flight per process, no admission
wait: PHOTOGRAM_GATEWAY_FEED_MAX_IN_FLIGHT=0, PHOTOGRAM_ADMISSION_WAIT_MS=0); "after" the
defaults (6 feed reads in flight per gateway process, 12 until 2026-12-03, a 20 ms
admission wait, 5 ms once the line has stood for 100 ms); "full-wait" the defaults with
the 20 ms always; "wait-8" the same with an 8 ms wait; "feed-bound-N" the defaults with N
feed reads in flight per gateway process; "newest-first" and "oldest-first" the defaults
with the line of waiting requests served newest first (a full line refusing its oldest)
or oldest first; "generator-asyncio" and "generator-uvloop" the defaults, the Python load
generator on asyncio's event loop or on uvloop (`BENCH_GENERATOR_LOOP`), and
"generator-go" the defaults loaded by `bench/loadgen` (`BENCH_GENERATOR=go`); `--variants`
picks them. CPU per served read is that of the gateway, feed-service, user-service and
post-service processes (not Redis's). The distributed mode is brought up with each in
turn, `--rounds` times (ABAB), and each time loaded at every rate of `--rates` (open loop,
`bench_feed.py --generate`, from the readers of `.backends/bench/readers.json`), so both
meet the same machine.

Needs built timelines for those readers in the bench's Redis database, which
`feed_reads.py --keep-up` leaves:

    uv run python bench/feed_reads.py --rates 300 --baseline-rates 20 --seconds 5 \
        --readers 1500 --keep-up
    uv run python bench/shedding_ab.py --rates 700,1400 --seconds 12 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import BENCH_RUN_DIR, bench_env, machine, revision, runner, today
from feed_reads import service_cpu

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "before": {"PHOTOGRAM_GATEWAY_FEED_MAX_IN_FLIGHT": "0", "PHOTOGRAM_ADMISSION_WAIT_MS": "0"},
    "after": {},
    # The defaults but the full wait always (no shorter wait for a standing line).
    "full-wait": {"PHOTOGRAM_ADMISSION_OVERLOAD_AFTER_MS": "0"},
    "wait-8": {"PHOTOGRAM_ADMISSION_WAIT_MS": "8"},
    # The defaults but fewer feed reads in flight per gateway process.
    "feed-bound-4": {"PHOTOGRAM_GATEWAY_FEED_MAX_IN_FLIGHT": "4"},
    "feed-bound-6": {"PHOTOGRAM_GATEWAY_FEED_MAX_IN_FLIGHT": "6"},
    "newest-first": {"PHOTOGRAM_ADMISSION_NEWEST_FIRST": "true"},
    "oldest-first": {"PHOTOGRAM_ADMISSION_NEWEST_FIRST": "false"},
    # The defaults, the Python load generator on asyncio's loop or on uvloop, or the Go one.
    "generator-asyncio": {"BENCH_GENERATOR": "python", "BENCH_GENERATOR_LOOP": "asyncio"},
    "generator-uvloop": {"BENCH_GENERATOR": "python", "BENCH_GENERATOR_LOOP": "uvloop"},
    "generator-go": {"BENCH_GENERATOR": "go"},
}


def load(
    rate: float,
    seconds: float,
    readers: Path,
    env: dict[str, str] | None = None,
    *,
    prefix: Sequence[str] = (),
) -> dict:
    """One open-loop load of the gateway's feed (`prefix`: a command the generator runs
    under, such as `taskset -c 1`) and its figures, CPU per read of the four services."""
    cpu_before = service_cpu()
    out = subprocess.run(
        [
            *prefix,
            sys.executable,
            str(HERE / "bench_feed.py"),
            "--generate",
            "http://127.0.0.1:8000/api/feed",
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--readers-file",
            str(readers),
            "--timeout",
            "15",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    cpu = sum(service_cpu().values()) - sum(cpu_before.values())
    result = json.loads(out.stdout.strip().splitlines()[-1])
    refused = result.get("status_503") or {}
    return {
        "rate": rate,
        "sent": result["sent"],
        "served_per_s": round(result["ok"] / seconds, 1),
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "errors": result["errors"],
        "refused_p50_ms": refused.get("p50_ms"),
        "cpu_ms_per_read": round(cpu * 1000 / max(1, result["ok"]), 2),
        "generator_max_lateness_ms": result.get("generator_max_lateness_ms"),
        "generator_loop": result.get("generator_loop"),
        "generator_cpu_s": result.get("generator_cpu_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="700,1400")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="before,after,wait-8", help=", ".join(VARIANTS))
    parser.add_argument("--readers-file", type=Path, default=BENCH_RUN_DIR / "readers.json")
    parser.add_argument("--json", type=Path, default=HERE.parent / "docs/bench/shedding-ab.json")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    variants = {name: VARIANTS[name] for name in args.variants.split(",")}
    if not args.readers_file.exists():
        raise SystemExit(f"{args.readers_file} is missing: run feed_reads.py --keep-up first")
    runs: list[dict] = []
    started = time.monotonic()
    try:
        for round_ in range(args.rounds):
            for name, overrides in variants.items():
                env = bench_env() | overrides
                runner("down", env)
                runner("up", env)
                time.sleep(3)
                load(100, 3, args.readers_file, env)  # connections and caches, not counted
                for rate in rates:
                    time.sleep(3)
                    figures = load(rate, args.seconds, args.readers_file, env)
                    runs.append({"round": round_ + 1, "variant": name, **figures})
                    print(json.dumps(runs[-1]), flush=True)
    finally:
        runner("down", bench_env())
    result = {
        "when": today(),
        "machine": machine(),
        "revision": revision(),
        "command": "python bench/shedding_ab.py " + " ".join(sys.argv[1:]),
        "variants": variants,
        "runs": runs,
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    header = ("variant", "rate", "served/s", "p50 ms", "p99 ms", "503s", "503 p50", "cpu ms")
    print("  ".join(f"{h:>9}" for h in header))
    for run in runs:
        cells = (
            run["variant"],
            f"{run['rate']:.0f}",
            f"{run['served_per_s']:.1f}",
            f"{run['p50_ms']:.1f}",
            f"{run['p99_ms']:.1f}",
            str(run["errors"].get("503", 0)),
            f"{run['refused_p50_ms'] or 0:.1f}",
            f"{run['cpu_ms_per_read']:.2f}",
        )
        print("  ".join(f"{c:>9}" for c in cells))


if __name__ == "__main__":
    main()
