# ruff: noqa: S603, S607, ASYNC220 (a bench: local processes and git, run by hand)
"""What one gateway -> service hop costs, this checkout against another revision, in one run.

The floor of the feed benchmark (`bench/floor_feed.py` behind a gateway, no backends: the
rate limiter is off and nothing else is called) built from two source trees: the working
tree ("after") and a `git worktree` of `--before` (default `HEAD`). The two are measured in
turn, `--rounds` times each, so that load from outside weighs on both alike. Each round is
a closed loop of `--concurrency` requests at a time for `--seconds` from this process
(aiohttp); reported per round: requests/s and the CPU time (`/proc/<pid>/stat`) of the
gateway and the service per request. With `--profile` a py-spy record of each process of
the last round of each tree is written next to the JSON (py-spy on the PATH).

    uv run python bench/hop_cost.py [--before REV] [--rounds 3] [--seconds 8] [--json PATH]

The last line printed is one JSON object with the medians of both trees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, machine, revision, today
from photogram_contracts.identity import Identity

from photogram_common.identity import issue_access_token

GATEWAY_PORT, SERVICE_PORT = 8091, 8191
PACKAGES = ("contracts", "common", "gateway")
SECRET, INTERNAL = "hop-cost-access-" + "a" * 32, "hop-cost-internal-" + "b" * 32


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def environment(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The tree's packages ahead of the editable installs of this checkout.
    env["PYTHONPATH"] = os.pathsep.join(str(tree / p) for p in PACKAGES)
    env.update(
        PHOTOGRAM_MODE="distributed",
        PHOTOGRAM_JWT_SECRET=SECRET,
        PHOTOGRAM_INTERNAL_SECRET=INTERNAL,
        PHOTOGRAM_RATE_LIMIT_PER_MINUTE="0",
        # Never reached with the limiter off; a closed port if it were.
        PHOTOGRAM_REDIS_URL="redis://127.0.0.1:9/0",
        PHOTOGRAM_PORT=str(GATEWAY_PORT),
    )
    peer = f"http://127.0.0.1:{SERVICE_PORT}"
    for name in ("USER_SERVICE", "POST_SERVICE", "MEDIA_SERVICE", "FEED_SERVICE", "FANOUT_WORKER"):
        env[f"PHOTOGRAM_{name}_URL"] = peer
    return env


class Hop:
    def __init__(self, tree: Path, logs: Path) -> None:
        env = environment(tree)
        self.processes = {
            "service": subprocess.Popen(
                [
                    sys.executable,
                    str(tree / "bench" / "floor_feed.py"),
                    "--port",
                    str(SERVICE_PORT),
                ],
                env=env,
                stdout=(logs / "service.log").open("w"),
                stderr=subprocess.STDOUT,
            ),
            "gateway": subprocess.Popen(
                [sys.executable, "-m", "gateway"],
                env=env,
                cwd=tree,
                stdout=(logs / "gateway.log").open("w"),
                stderr=subprocess.STDOUT,
            ),
        }

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            process.wait(timeout=20)


async def ready(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with session.get(url, headers=headers) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not answer 200 within 30 s")


async def measure(hop: Hop, args: argparse.Namespace, profile: Path | None) -> dict:
    url = f"http://127.0.0.1:{GATEWAY_PORT}/api/feed"
    token = issue_access_token(
        secret=SECRET, identity=Identity(user_id=10**16, username="bench"), ttl_seconds=3600
    )
    headers = {"authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        await ready(session, url, headers)
        for _ in range(200):  # warm both processes
            async with session.get(url, headers=headers) as response:
                await response.read()
        spies = []
        if profile is not None:
            for name, process in hop.processes.items():
                out = profile.with_name(f"{profile.name}-{name}.txt")
                spies.append(
                    subprocess.Popen(
                        [
                            "py-spy",
                            "record",
                            "-p",
                            str(process.pid),
                            "-r",
                            "200",
                            "-f",
                            "raw",
                            "-d",
                            str(int(args.seconds)),
                            "-o",
                            str(out),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        pids = {name: p.pid for name, p in hop.processes.items()}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started, done, errors = time.monotonic(), 0, 0

        async def loop() -> None:
            nonlocal done, errors
            while time.monotonic() - started < args.seconds:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1

        await asyncio.gather(*(loop() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - started
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        for spy in spies:
            spy.wait(timeout=60)
    per = {name: round(1000 * (after[name] - before[name]) / max(done, 1), 3) for name in pids}
    return {
        "requests_per_s": round(done / elapsed, 1),
        "errors": errors,
        "cpu_ms_per_request": per,
        "cpu_ms_per_request_total": round(sum(per.values()), 3),
    }


def worktree(rev: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="hop-cost-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), rev],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="HEAD", help="the revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="py-spy the last rounds")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench" / "hop-cost.json")
    args = parser.parse_args()
    if args.profile and shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy on the PATH")
    before_tree = worktree(args.before)
    trees = {"before": before_tree, "after": REPO}
    rounds: dict[str, list[dict]] = {"before": [], "after": []}
    logs = Path(tempfile.mkdtemp(prefix="hop-cost-logs-"))
    try:
        for i in range(args.rounds):
            for name, tree in trees.items():
                hop = Hop(tree, logs)
                last = i == args.rounds - 1
                profile = (
                    args.json.with_name(f"{args.json.stem}-{name}")
                    if args.profile and last
                    else None
                )
                try:
                    result = asyncio.run(measure(hop, args, profile))
                finally:
                    hop.stop()
                rounds[name].append(result)
                print(
                    f"round {i + 1} {name:6}: {result['requests_per_s']:7.1f}/s, "
                    f"CPU/request {result['cpu_ms_per_request']} ms",
                    flush=True,
                )
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(before_tree)],
            cwd=REPO,
            check=False,
            capture_output=True,
        )

    def median(name: str, field: str) -> float:
        return round(statistics.median(r[field] for r in rounds[name]), 3)

    summary = {
        "before": args.before,
        "before_rev": subprocess.run(
            ["git", "rev-parse", "--short", args.before], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "after_rev": revision(),
        "before_rps": median("before", "requests_per_s"),
        "after_rps": median("after", "requests_per_s"),
        "before_cpu_ms": median("before", "cpu_ms_per_request_total"),
        "after_cpu_ms": median("after", "cpu_ms_per_request_total"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "when": today(),
                "machine": machine(),
                "command": " ".join(sys.argv),
                "loadavg": os.getloadavg(),
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "rounds": rounds,
                "summary": summary,
            },
            indent=2,
        )
        + "\n"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
