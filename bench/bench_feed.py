# ruff: noqa: S603, ASYNC240 (a bench: local processes, run once, by hand)
"""The feed benchmark: Photogram against the naive pull monolith and the floor, on one data set.

    make bench-feed                          # BENCH_USERS=100000 by default
    uv run python bench/bench_feed.py --users 100000 [--readers 20000] [--trial-seconds 8]

Data: `bench/feed_graph.py`'s, reused when `.backends/bench/graph.json` names the same
user count (and the databases are there), generated otherwise. Three systems on the same
PostgreSQL data, all started before the first trial and measured in turn (one trial of
each, then the next of each), so that whatever else loads the shared machine meanwhile
weighs on the three alike; an idle system costs next to nothing (measured, reported):

- **photogram**: `GET /api/feed` through the gateway of the distributed mode
  (`python -m photogram_runner up` on the bench's stores: its databases, Kafka prefix
  `bench.`, rate limits off, and a redis-server of the bench's own, started for the run
  with the shared one's settings, since test suites FLUSHALL the shared one). Then every
  sampled reader's feed is read once (closed loop, for `--warm-budget` seconds at most)
  so that the measured reads find their timelines built (a first read rebuilds one);
  every system's measured reads draw from the readers warmed;
- **pull**: `bench/pull_monolith.py`, one FastAPI + asyncpg process running the pull query
  on the `bench_follows` copy of the graph, same token check and page shape;
- **floor**: a second gateway (`python -m gateway` on port 8090) whose feed-service is
  `bench/floor_feed.py`, a service that returns a canned 20-post page: what the
  gateway -> feed-service hop costs with no feed behind it.

For each: the highest open-loop rate served with p99 <= `--p99-ms` (100) and no error,
searched by doubling from `--start-rate` until a trial fails, then bisecting to
`--precision` (10 %); one trial is `--trial-seconds` (8) of load, longer at low rates
so that it has at least `--min-requests` (400) requests (at most 4x as long), from a separate
load-generator process (aiohttp on uvloop, `BENCH_GENERATOR_LOOP`, or `bench/loadgen` in
Go with `BENCH_GENERATOR=go`; request i scheduled at
t0 + i/R, latency counted from that time, so queueing in the generator counts; readers
drawn at random from the sample, each with an access token minted with the bench's JWT
secret); a trial that fails with at most 1 % errors is run again, `--retries` (1) times,
before its rate counts as failed. Then a run at half that
rate for p50/p99 and the CPU per request: the CPU time (user + system, /proc/<pid>/stat
before and after) of every process of the system (the services, PostgreSQL's processes
serving the bench databases plus its background processes, Redis, and Kafka for
Photogram) over the run, divided by the requests served; per process too. For Photogram,
also 2x its maximum for `--knee-seconds` (15): what is served, the share of 503s and
their latency.

Everything shares the machine's cores (the systems, PostgreSQL, Redis, Kafka and the load
generator). Writes the figures to `docs/bench/feed-<users>.json`; the last line printed
is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (
    BENCH_DBS,
    BENCH_RUN_DIR,
    REPO,
    bench_env,
    bench_lock,
    machine,
    percentile,
    pg_url,
    revision,
    runner,
    today,
)

PHOTOGRAM_GATEWAY = "http://127.0.0.1:8000"
FLOOR_GATEWAY_PORT, FLOOR_FEED_PORT, PULL_PORT = 8090, 8190, 8191
BACKENDS = REPO / ".backends"
SERVICE_NAMES = (
    "gateway",
    "feed-service",
    "user-service",
    "post-service",
    "media-service",
    "fanout-worker",
    "notification-service",
)
SERVICE_PORTS = (8000, 8101, 8102, 8103, 8104, 8105, 8106)
CELEBRITY_THRESHOLD = 10_000
TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- load generator


def summarize(records: list[tuple[float, float, str]], rate: float, seconds: float) -> dict:
    """Figures of one run from its (scheduled offset, latency, status) records."""
    ok = [lat for _, lat, status in records if status == "200"]
    refused = [lat for _, lat, status in records if status == "503"]
    errors: dict[str, int] = {}
    for _, _, status in records:
        if status != "200":
            errors[status] = errors.get(status, 0) + 1

    def ms(values: list[float], q: float) -> float | None:
        return round(percentile(values, q) * 1000, 1) if values else None

    return {
        "rate": rate,
        "seconds": seconds,
        "sent": len(records),
        "ok": len(ok),
        "errors": errors,
        "served_per_s": round(len(ok) / seconds, 1),
        "p50_ms": ms(ok, 50),
        "p90_ms": ms(ok, 90),
        "p99_ms": ms(ok, 99),
        "max_ms": round(max(ok) * 1000, 1) if ok else None,
        "status_503": {
            "count": len(refused),
            "share": round(len(refused) / len(records), 4) if records else 0,
            "p50_ms": ms(refused, 50),
            "p99_ms": ms(refused, 99),
        },
    }


async def open_loop(
    url: str,
    rate: float,
    seconds: float,
    readers: list[dict],
    *,
    request_timeout: float,
    seed: int,
    at_offset: tuple[float, Callable[[], Awaitable[Any]]] | None = None,
    every_second: Callable[[], Awaitable[Any]] | None = None,
    readers_after_hook: list[dict] | None = None,
) -> tuple[list[tuple[float, float, str]], dict]:
    """Send GET url at a fixed arrival rate; each latency counts from its scheduled time.

    `at_offset` = (seconds, hook): the hook runs once that far into the run (its actual
    start is reported as `hook_at_s`); from then on readers are drawn from
    `readers_after_hook` when given; `every_second` is sampled once a second.
    """
    import aiohttp

    rng = random.Random(seed)
    headers = [{"Authorization": f"Bearer {r['token']}"} for r in readers]
    after_headers = [{"Authorization": f"Bearer {r['token']}"} for r in readers_after_hook or []]
    loop = asyncio.get_running_loop()
    records: list[tuple[float, float, str]] = []
    items: list[int] = []
    samples: list[tuple[float, Any]] = []
    total = int(rate * seconds)
    late = 0.0
    hook_at: float | None = None
    connector = aiohttp.TCPConnector(limit=5000, limit_per_host=5000)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(index: int, scheduled: float, header: dict) -> None:
            try:
                async with asyncio.timeout(request_timeout):
                    async with http.get(url, headers=header) as response:
                        body = await response.read()
                        status = str(response.status)
                if status == "200" and index % 25 == 0:
                    items.append(len(json.loads(body)["items"]))
            except TimeoutError:
                status = "timeout"
            except (aiohttp.ClientError, OSError) as exc:
                status = type(exc).__name__
            records.append((scheduled - t0, loop.time() - scheduled, status))

        async def hook(run: Callable[[], Awaitable[Any]]) -> None:
            nonlocal hook_at
            hook_at = loop.time() - t0
            await run()

        async def sample(probe: Callable[[], Awaitable[Any]]) -> None:
            while True:
                samples.append((round(loop.time() - t0, 2), await probe()))
                await asyncio.sleep(1.0)

        tasks = []
        hook_task = None
        t0 = loop.time() + 0.3
        sampler = asyncio.create_task(sample(every_second)) if every_second else None
        for i in range(total):
            scheduled = t0 + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            if at_offset is not None and hook_task is None and i / rate >= at_offset[0]:
                hook_task = asyncio.create_task(hook(at_offset[1]))
                headers = after_headers or headers
            tasks.append(asyncio.create_task(one(i, scheduled, rng.choice(headers))))
        await asyncio.gather(*tasks)
        if hook_task is not None:
            await hook_task
        if sampler is not None:
            sampler.cancel()
    extra = {
        "generator_max_lateness_ms": round(late * 1000, 1),
        "generator_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "mean_items": round(sum(items) / len(items), 1) if items else None,
    }
    if at_offset is not None:
        extra["hook_at_s"] = None if hook_at is None else round(hook_at, 3)
    if every_second is not None:
        extra["samples"] = samples
    return records, extra


async def generate(args: argparse.Namespace) -> None:
    readers = json.loads(Path(args.readers_file).read_text())
    at_offset = every_second = None
    if args.flush_at is not None:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(args.redis_url)

        async def flush() -> None:
            await redis.flushdb()

        at_offset = (args.flush_at, flush)
        every_second = redis.dbsize
    records, extra = await open_loop(
        args.url,
        args.rate,
        args.seconds,
        readers,
        request_timeout=args.timeout,
        seed=int(args.rate),
        at_offset=at_offset,
        every_second=every_second,
        readers_after_hook=(
            json.loads(Path(args.readers_after_file).read_text())
            if args.readers_after_file
            else None
        ),
    )
    if args.records:
        Path(args.records).write_text(json.dumps({"requests": records} | extra))
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = summarize(records, args.rate, args.seconds) | extra
    result.pop("samples", None)
    result["generator_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    print(json.dumps(result))


# --------------------------------------------------------------------------- CPU accounting


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds so far) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def postgres_processes() -> dict[int, str]:
    """PostgreSQL's processes that serve the bench: its background ones and bench backends."""
    postmaster = _pid_file(BACKENDS / "postgres" / "data" / "postmaster.pid")
    if postmaster is None:
        raise SystemExit("PostgreSQL is not running (no postmaster.pid)")
    found = {postmaster: "postgres (background)"}
    bench_dbs = set(BENCH_DBS.values())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[0] != postmaster:
            continue
        words = _cmdline(int(entry.name)).split()
        # A backend's title is "postgres: <user> <database> <client address> <state>".
        client = words[3] if len(words) > 3 else ""
        if client.startswith("[local]") or client.endswith(")"):
            if words[2] in bench_dbs:
                found[int(entry.name)] = "postgres (bench backends)"
        else:
            found[int(entry.name)] = "postgres (background)"
    return found


def backend_processes(*, kafka: bool) -> dict[int, str]:
    found = postgres_processes()
    if BenchRedis.pid is None:
        raise SystemExit("the bench's Redis is not running")
    found[BenchRedis.pid] = "redis"
    if kafka:
        pid = _pid_file(BACKENDS / "run" / "kafka.pid")
        if pid is None:
            raise SystemExit("Kafka is not running (no pid file)")
        found[pid] = "kafka"
    return found


@dataclass
class CpuWindow:
    """CPU seconds of a system's processes between start() and stop()."""

    processes: Callable[[], dict[int, str]]
    before: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self.before = {}
        for pid in self.processes():
            stat = _stat(pid)
            if stat is not None:
                self.before[pid] = stat[1]

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for pid, name in self.processes().items():
            stat = _stat(pid)
            if stat is not None:
                # A backend that started during the window counts from zero.
                used[name] = used.get(name, 0.0) + stat[1] - self.before.get(pid, 0.0)
        return used


def cpu_figures(used: dict[str, float], served: int) -> dict:
    total = sum(used.values())
    return {
        "cpu_ms_per_request": round(total * 1000 / served, 2) if served else None,
        "cpu_ms_per_request_by_process": {
            name: round(seconds * 1000 / served, 3) if served else None
            for name, seconds in sorted(used.items(), key=lambda kv: -kv[1])
        },
        "cpu_seconds": round(total, 2),
    }


# --------------------------------------------------------------------------- the systems


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_ready(name: str, url: str, process: subprocess.Popen | None, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log.exists() else ""
    raise SystemExit(f"{name} did not become ready at {url}:\n{tail}")


def bench_secret(name: str) -> str:
    """The bench's JWT or internal secret, made as the runner makes it when missing."""
    run = BENCH_RUN_DIR / "services"
    run.mkdir(parents=True, exist_ok=True)
    path = run / f".{name}"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def system_env() -> dict[str, str]:
    env = bench_env(rate_limit=0)
    env.pop("PHOTOGRAM_PORT", None)
    env["PHOTOGRAM_MODE"] = "distributed"
    env["PHOTOGRAM_JWT_SECRET"] = bench_secret("jwt_secret")
    env["PHOTOGRAM_INTERNAL_SECRET"] = bench_secret("internal_secret")
    env["PHOTOGRAM_REDIS_URL"] = BenchRedis.url
    return env


class BenchRedis:
    """A redis-server of the bench's own, started as scripts/backends.sh starts the shared one.

    The shared Redis serves the test suites too, and some of them FLUSHALL it (e.g.
    tests/e2e/test_feed_resilience.py), which would wipe the timelines mid-run; its CPU
    would also mix other users' commands with the system's.
    """

    port = 56390
    url = f"redis://127.0.0.1:{port}/0"
    pid: int | None = None

    def __enter__(self) -> BenchRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is missing: bash scripts/backends.sh start")
        if not port_free(self.port):
            raise SystemExit(f"port {self.port} (the bench's Redis) is in use")
        workdir = BENCH_RUN_DIR / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        log = BENCH_RUN_DIR / "redis.log"
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--logfile",
                str(log),
                "--zset-max-listpack-entries",
                "1024",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while port_free(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the bench's redis-server did not start; see {log}")
            time.sleep(0.05)
        BenchRedis.pid = self.process.pid
        return self

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        BenchRedis.pid = None


class System:
    name = ""
    url = ""
    kafka = False

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def own_processes(self) -> dict[int, str]:
        return {}

    def processes(self) -> dict[int, str]:
        return self.own_processes() | backend_processes(kafka=self.kafka)


class Photogram(System):
    name = "photogram"
    url = f"{PHOTOGRAM_GATEWAY}/api/feed"
    kafka = True
    warm_figures: dict | None = None

    def start(self) -> None:
        env = system_env()
        runner("down", env)  # leftovers of an interrupted run (the bench's own pid files)
        busy = [p for p in SERVICE_PORTS if not port_free(p)]
        if busy:
            raise SystemExit(f"ports {busy} are in use: is another `make up` running?")
        asyncio.run(flush_bench_redis())
        runner("up", env)

    def stop(self) -> None:
        runner("down", system_env())
        # The timelines are the bench's alone: give their memory back to the shared Redis.
        asyncio.run(flush_bench_redis())

    def own_processes(self) -> dict[int, str]:
        found = {}
        for name in SERVICE_NAMES:
            pid = _pid_file(BENCH_RUN_DIR / "services" / f"{name}.pid")
            if pid is None:
                raise SystemExit(f"{name} is not running")
            found[pid] = name
        return found


class Spawned(System):
    """Processes the bench starts itself, stopped by their own pids."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []

    def spawn(self, name: str, command: list[str], env: dict[str, str], ready: str) -> None:
        log = BENCH_RUN_DIR / f"{name}.log"
        with log.open("ab") as out:
            child = subprocess.Popen(
                command, env=env, stdout=out, stderr=out, cwd=REPO, start_new_session=True
            )
        self.children.append((name, child))
        try:
            wait_ready(name, ready, child, log)
        except SystemExit:
            self.stop()
            raise

    def stop(self) -> None:
        for _, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(25)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        self.children = []

    def own_processes(self) -> dict[int, str]:
        for name, child in self.children:
            if child.poll() is not None:
                raise SystemExit(f"{name} exited with status {child.returncode}")
        return {child.pid: name for name, child in self.children}


class PullMonolith(Spawned):
    name = "pull"
    url = f"http://127.0.0.1:{PULL_PORT}/api/feed"

    def start(self) -> None:
        if not port_free(PULL_PORT):
            raise SystemExit(f"port {PULL_PORT} is in use")
        self.spawn(
            "pull-monolith",
            [sys.executable, str(REPO / "bench" / "pull_monolith.py"), "--port", str(PULL_PORT)],
            system_env(),
            f"http://127.0.0.1:{PULL_PORT}/readyz",
        )


class Floor(Spawned):
    name = "floor"
    url = f"http://127.0.0.1:{FLOOR_GATEWAY_PORT}/api/feed"

    def start(self) -> None:
        for port in (FLOOR_GATEWAY_PORT, FLOOR_FEED_PORT):
            if not port_free(port):
                raise SystemExit(f"port {port} is in use")
        env = system_env()
        self.spawn(
            "floor-feed",
            [sys.executable, str(REPO / "bench" / "floor_feed.py"), "--port", str(FLOOR_FEED_PORT)],
            env,
            f"http://127.0.0.1:{FLOOR_FEED_PORT}/readyz",
        )
        # Every peer of this gateway is the floor service: it answers /readyz and /feed.
        floor = f"http://127.0.0.1:{FLOOR_FEED_PORT}"
        for peer in ("USER_SERVICE", "POST_SERVICE", "MEDIA_SERVICE", "FEED_SERVICE"):
            env[f"PHOTOGRAM_{peer}_URL"] = floor
        env["PHOTOGRAM_FANOUT_WORKER_URL"] = floor
        env["PHOTOGRAM_PORT"] = str(FLOOR_GATEWAY_PORT)
        self.spawn(
            "floor-gateway",
            [sys.executable, "-m", "gateway"],
            env,
            f"http://127.0.0.1:{FLOOR_GATEWAY_PORT}/readyz",
        )


# --------------------------------------------------------------------------- measuring


def trial(
    system: System,
    rate: float,
    seconds: float,
    readers_file: Path,
    *,
    timeout: float = 5.0,
    extra: tuple[str, ...] = (),
) -> dict:
    """One open-loop run from a separate generator process, with the system's CPU."""
    build_generator()
    window = CpuWindow(system.processes)
    window.start()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--generate",
            system.url,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--readers-file",
            str(readers_file),
            "--timeout",
            str(timeout),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=system_env(),
    )
    used = window.stop()
    if out.returncode:
        raise SystemExit(f"the load generator failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(cpu_figures(used, result["ok"]))
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def settle(system: System, pause: float, idle_cores: float = 0.2, limit: float = 60.0) -> None:
    """Wait until the system is idle again: an overloaded trial leaves work behind it."""
    time.sleep(pause)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        window = CpuWindow(system.processes)
        window.start()
        time.sleep(1.0)
        if sum(window.stop().values()) < idle_cores:
            return
    print(f"[bench] {system.name} still busy {limit:.0f} s after a trial", flush=True)


def passed(result: dict, p99_ms: float) -> bool:
    return not result["errors"] and result["p99_ms"] is not None and result["p99_ms"] <= p99_ms


def line(system: str, result: dict) -> str:
    errors = sum(result["errors"].values())
    return (
        f"[bench] {system:9} R={result['rate']:7.1f}/s  served {result['served_per_s']:7.1f}/s  "
        f"p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  errors {errors}"
        f"{' ' + json.dumps(result['errors']) if errors else ''}  "
        f"cpu {result['cpu_ms_per_request']} ms/req  load {result['loadavg'][0]}"
    )


def trial_seconds(args: argparse.Namespace, rate: float) -> float:
    """A trial's length: long enough for a p99 that is not just the slowest few requests
    (up to four times the usual length, at very low rates)."""
    wanted = min(args.min_requests / rate, 4 * args.trial_seconds)
    return round(max(args.trial_seconds, wanted), 1)


@dataclass
class Search:
    """The highest passing rate: x`step` (2) until a trial fails, then bisection to the
    precision."""

    rate: float
    precision: float
    max_rate: float
    step: float = 2.0
    low: float = 0.0
    high: float | None = None
    trials: list[dict] = field(default_factory=list)

    def next_rate(self) -> float | None:
        """The rate of the next trial; None when the search is done."""
        if self.high is None:
            return self.rate if self.rate <= self.max_rate else None
        if self.low == 0:
            # Even the start rate failed: halve, down to 1/s.
            return self.high / 2 if self.high / 2 >= 1 else None
        if self.high - self.low <= max(self.precision * self.low, 1.0):
            return None
        return round((self.low + self.high) / 2, 1)

    def record(self, rate: float, ok: bool, result: dict) -> None:
        self.trials.append(result)
        if ok:
            self.low = rate
            if self.high is None:
                self.rate = round(rate * self.step, 1)
        else:
            self.high = rate

    def retried(self, rate: float, result: dict) -> None:
        """A failed trial of `rate` that is run again: kept, without deciding anything."""
        self.trials.append(result | {"retried": True})

    def figures(self) -> dict:
        return {"max_rps": self.low, "first_failing_rps": self.high, "trials": self.trials}


def search_all(systems: list[System], args: argparse.Namespace, readers_file: Path) -> dict:
    """Every system's search, one trial of each in turn, so that whatever else loads the
    machine meanwhile weighs on all of them alike."""
    searches = {
        system.name: Search(float(args.start_rate), args.precision, args.max_rate)
        for system in systems
    }
    while True:
        pending = [(system, searches[system.name].next_rate()) for system in systems]
        pending = [(system, rate) for system, rate in pending if rate is not None]
        if not pending:
            return {name: search.figures() for name, search in searches.items()}
        for system, rate in pending:
            # A trial that fails narrowly (at most 1 % errors) is run again, up to --retries
            # times, before the rate counts as failed: one stall of a process on these
            # shared cores fails the p99 of an 8 s trial. A clear overload is not retried.
            for attempt in range(args.retries + 1):
                result = trial(system, rate, trial_seconds(args, rate), readers_file)
                result["attempt"] = attempt + 1
                ok = passed(result, args.p99_ms)
                narrow = sum(result["errors"].values()) <= 0.01 * max(result["sent"], 1)
                last = ok or not narrow or attempt == args.retries
                print(
                    line(system.name, result)
                    + ("" if ok else "  FAIL" if last else "  fail: again"),
                    flush=True,
                )
                settle(system, args.pause)
                if last:
                    break
                searches[system.name].retried(rate, result)
            searches[system.name].record(rate, ok, result)


async def flush_bench_redis() -> None:
    import redis.asyncio as aioredis

    redis = aioredis.from_url(BenchRedis.url)
    await redis.flushdb()
    await redis.aclose()


WARM_TRIES = 5


async def warm(
    url: str, readers: list[dict], concurrency: int, budget_s: float | None = None
) -> tuple[dict, list[dict]]:
    """Read each reader's feed once, closed loop: a first read builds its timeline.

    With a budget, no new reader is started past it. A 503 is tried again after its
    Retry-After, as a client would, up to WARM_TRIES times. Returns the figures (every
    attempt) and the readers whose read succeeded (their timelines are built).
    """
    import aiohttp

    queue = list(readers)
    records: list[tuple[float, float, str]] = []
    warmed: list[dict] = []
    started = time.perf_counter()
    deadline = None if budget_s is None else started + budget_s
    last_print = started
    finished = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def worker() -> None:
            nonlocal last_print, finished
            while queue and (deadline is None or time.perf_counter() < deadline):
                reader = queue.pop()
                for _ in range(WARM_TRIES):
                    begin = time.perf_counter()
                    retry_after = 1.0
                    try:
                        async with http.get(
                            url, headers={"Authorization": f"Bearer {reader['token']}"}
                        ) as response:
                            await response.read()
                            status = str(response.status)
                            retry_after = float(response.headers.get("Retry-After", 1))
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        status = type(exc).__name__
                    now = time.perf_counter()
                    records.append((begin - started, now - begin, status))
                    if status != "503":
                        break
                    await asyncio.sleep(retry_after)
                finished += 1
                if status == "200":
                    warmed.append(reader)
                if now - last_print > 10:
                    last_print = now
                    done = finished
                    rate = done / (now - started)
                    print(
                        f"[bench] warming: {done:,}/{len(readers):,} readers, {rate:.0f}/s, "
                        f"ETA {(len(readers) - done) / rate:.0f} s"
                        + (f" (budget {budget_s:.0f} s)" if budget_s else ""),
                        flush=True,
                    )

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    result = summarize(records, 0, elapsed)
    result.update(
        {
            "concurrency": concurrency,
            "elapsed_s": round(elapsed, 1),
            "reads_per_s": round(len(records) / elapsed, 1),
            "readers_tried": finished,
            "budget_s": budget_s,
            "readers_sampled": len(readers),
            "readers_warmed": len(warmed),
        }
    )
    return result, warmed


# --------------------------------------------------------------------------- data and readers


def graph_summary() -> dict | None:
    try:
        return json.loads((BENCH_RUN_DIR / "graph.json").read_text())
    except (OSError, ValueError):
        return None


async def data_present(users: int) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(pg_url(BENCH_DBS["users"]))
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        count = await conn.fetchval("SELECT count(*) FROM users")
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()
    return bool(count == users)


def ensure_data(users: int, extra: list[str]) -> tuple[dict, float | None]:
    """Reuse the generated data when it has `users` users; else generate it (timed)."""
    summary = graph_summary()
    if summary and summary.get("users") == users and asyncio.run(data_present(users)):
        print(f"[bench] reusing the generated data: {json.dumps(summary)}", flush=True)
        return summary, None
    print(f"[bench] generating {users:,} users (bench/feed_graph.py)", flush=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "feed_graph.py"), "--users", str(users), *extra],
        check=True,
        cwd=REPO,
    )
    summary = graph_summary()
    if not summary or summary.get("users") != users:
        raise SystemExit("bench/feed_graph.py did not write a matching graph.json")
    return summary, round(time.perf_counter() - started, 1)


async def sample_readers(count: int, ttl_seconds: int) -> tuple[list[dict], dict]:
    """Readers drawn at random among the users, with access tokens; and their profile."""
    import asyncpg
    from photogram_contracts.identity import Identity

    from photogram_common.identity import issue_access_token

    conn = await asyncpg.connect(pg_url(BENCH_DBS["users"]))
    try:
        rows = await conn.fetch(
            "SELECT id, username, following_count FROM users ORDER BY random() LIMIT $1", count
        )
        celebrities = await conn.fetch(
            "SELECT f.follower_id, count(*) AS n FROM follows f "
            "JOIN users u ON u.id = f.followee_id WHERE f.follower_id = ANY($1::bigint[]) "
            "AND u.followers_count >= $2 GROUP BY 1",
            [r["id"] for r in rows],
            CELEBRITY_THRESHOLD,
        )
    finally:
        await conn.close()
    secret = bench_secret("jwt_secret")
    readers = [
        {
            "user_id": str(r["id"]),
            "username": r["username"],
            "following": r["following_count"],
            "token": issue_access_token(
                secret=secret, identity=Identity(r["id"], r["username"]), ttl_seconds=ttl_seconds
            ),
        }
        for r in rows
    ]
    following = [r["following_count"] for r in rows]
    pulled = {r["follower_id"]: r["n"] for r in celebrities}
    pulled_counts = [pulled.get(r["id"], 0) for r in rows]
    profile = {
        "readers": len(readers),
        "followees": {
            "mean": round(sum(following) / len(following), 1),
            "p50": percentile(following, 50),
            "p99": percentile(following, 99),
            "max": max(following),
        },
        "celebrities_followed": {
            "mean": round(sum(pulled_counts) / len(pulled_counts), 2),
            "p50": percentile(pulled_counts, 50),
            "p99": percentile(pulled_counts, 99),
            "max": max(pulled_counts),
        },
    }
    return readers, profile


# --------------------------------------------------------------------------- orchestration


def measure_all(
    systems: list[System], args: argparse.Namespace, readers: list[dict], readers_file: Path
) -> dict:
    """Start every system (Photogram first, then warm it), search them side by side, then
    each one's half-rate run and Photogram's run past the knee; stop them all."""
    figures: dict[str, dict[str, Any]] = {system.name: {} for system in systems}
    started: list[System] = []
    try:
        for system in systems:
            print(f"[bench] starting {system.name}", flush=True)
            system.start()
            started.append(system)
            if isinstance(system, Photogram):
                print(
                    f"[bench] warming Photogram: reading each of {len(readers):,} readers' "
                    f"feeds once, {args.warm_concurrency} at a time, for "
                    f"{args.warm_budget:.0f} s at most",
                    flush=True,
                )
                warm_figures, warmed = asyncio.run(
                    warm(system.url, readers, args.warm_concurrency, args.warm_budget)
                )
                figures[system.name]["warm_first_reads"] = warm_figures
                print(f"[bench] warm-up: {json.dumps(warm_figures)}", flush=True)
                if not warmed:
                    raise SystemExit("no reader's feed could be read: Photogram's feed fails")
                # Every system's measured reads draw from the readers with a built timeline.
                readers[:] = warmed
                readers_file.write_text(json.dumps(readers))
            else:
                # Connections, pools and caches: a few seconds of light load, not measured.
                trial(system, args.start_rate, 3, readers_file)
            settle(system, args.pause)
        for system in systems:
            # What the processes use with no load (polling, heartbeats): it is in every
            # trial's CPU, and weighs most per request at low rates.
            window = CpuWindow(system.processes)
            window.start()
            time.sleep(3.0)
            idle = window.stop()
            figures[system.name]["idle_cpu_cores"] = {
                name: round(seconds / 3.0, 3) for name, seconds in sorted(idle.items())
            }
        for name, search in search_all(systems, args, readers_file).items():
            figures[name]["search"] = search
        for system in systems:
            top = figures[system.name]["search"]["max_rps"]
            if not top:
                continue
            half = trial(system, top / 2, trial_seconds(args, top / 2), readers_file)
            print(line(system.name, half) + "  (half of the maximum)", flush=True)
            figures[system.name]["at_half"] = half
            settle(system, args.pause)
        for system in systems:
            top = figures[system.name]["search"]["max_rps"]
            if isinstance(system, Photogram) and top:
                knee = trial(
                    system, round(top * 2, 1), args.knee_seconds, readers_file, timeout=15.0
                )
                print(line(system.name, knee) + "  (twice the maximum)", flush=True)
                figures[system.name]["past_the_knee"] = knee
    finally:
        for system in reversed(started):
            print(f"[bench] stopping {system.name}", flush=True)
            system.stop()
    return figures


def orchestrate(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    summary, generated_s = ensure_data(args.users, args.graph_args or [])
    readers, profile = asyncio.run(sample_readers(args.readers, ttl_seconds=6 * 3600))
    if len(readers) < args.readers:
        print(f"[bench] only {len(readers):,} users to read as", flush=True)
    readers_file = BENCH_RUN_DIR / "readers.json"
    readers_file.write_text(json.dumps(readers))
    print(f"[bench] readers: {json.dumps(profile)}", flush=True)
    figures: dict[str, Any] = {
        "when": today(),
        "machine": machine(),
        "revision": revision(),
        "command": "python bench/bench_feed.py " + " ".join(sys.argv[1:]),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "graph": summary,
        "generated_in_s": generated_s,
        "reader_sample": profile,
        "criteria": {
            "p99_ms_at_most": args.p99_ms,
            "errors": 0,
            "trial_seconds": args.trial_seconds,
            "trial_requests_at_least": args.min_requests,
            "retries_of_a_narrow_failure": args.retries,
            "search": f"x2 from {args.start_rate}/s until a failure, then bisection to "
            f"{args.precision:.0%} (or 1/s)",
        },
        "systems": {},
    }
    kinds: dict[str, type[System]] = {
        "photogram": Photogram,
        "pull": PullMonolith,
        "floor": Floor,
    }
    # Photogram first: the others then read as the readers whose timelines it built.
    names = sorted(args.systems.split(","), key=lambda name: name != "photogram")
    figures["systems"] = measure_all([kinds[name]() for name in names], args, readers, readers_file)
    figures["readers_measured"] = len(readers)
    figures["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    figures["wall_s"] = round(time.perf_counter() - started, 1)

    def top(name: str) -> float | None:
        system = figures["systems"].get(name)
        return system["search"]["max_rps"] if system else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    photogram = figures["systems"].get("photogram", {})
    half = photogram.get("at_half", {})
    headline = {
        "users": args.users,
        "photogram_max_rps": top("photogram"),
        "pull_max_rps": top("pull"),
        "floor_max_rps": top("floor"),
        "ratio_vs_pull": ratio(top("photogram"), top("pull")),
        "ratio_vs_floor": ratio(top("photogram"), top("floor")),
        "cpu_ms_per_read": half.get("cpu_ms_per_request"),
        "p99_ms_at_half": half.get("p99_ms"),
    }
    figures["headline"] = headline
    out = Path(args.json or REPO / "docs" / "bench" / f"feed-{args.users}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"[bench] figures written to {out} ({figures['wall_s']} s in all)", flush=True)
    print(json.dumps(headline))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=int(os.environ.get("BENCH_USERS", 100_000)))
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--systems", default="photogram,pull,floor")
    parser.add_argument("--trial-seconds", type=float, default=8.0)
    parser.add_argument("--min-requests", type=int, default=400, help="per trial, at least")
    parser.add_argument("--knee-seconds", type=float, default=15.0)
    parser.add_argument("--start-rate", type=float, default=25.0)
    parser.add_argument("--max-rate", type=float, default=20_000.0)
    parser.add_argument("--precision", type=float, default=0.10)
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between trials")
    parser.add_argument("--retries", type=int, default=1, help="runs more of a failed trial")
    parser.add_argument("--warm-concurrency", type=int, default=16)
    parser.add_argument(
        "--warm-budget",
        type=float,
        default=420.0,
        help="seconds of first reads at most; the trials draw from the readers warmed",
    )
    parser.add_argument("--json", help="where to write the figures")
    parser.add_argument(
        "--graph-args", nargs=argparse.REMAINDER, help="passed to feed_graph.py when generating"
    )
    # The load generator's own process (internal).
    parser.add_argument("--generate", metavar="URL")
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--readers-file")
    parser.add_argument("--readers-after-file", help="readers drawn from after --flush-at")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--flush-at", type=float, help="FLUSHDB the bench Redis this far in")
    parser.add_argument("--records", help="write every request's record here")
    parser.add_argument("--redis-url", default=BenchRedis.url, help="the Redis to flush")
    args = parser.parse_args()
    if args.generate:
        args.url = args.generate
        if generator_kind() == "go":
            generate_with_go(args)
        else:
            run_generator_loop(generate(args))
    else:
        with bench_lock("bench_feed.py"), BenchRedis():
            orchestrate(args)


LOADGEN_SOURCE = Path(__file__).resolve().parent / "loadgen"
LOADGEN_BINARY = BENCH_RUN_DIR / "loadgen"


def generator_kind() -> str:
    """`BENCH_GENERATOR`: `python` (the aiohttp generator above, on `BENCH_GENERATOR_LOOP`;
    the default) or `go` (bench/loadgen: as much CPU, closer to its schedule)."""
    kind = os.environ.get("BENCH_GENERATOR", "python")
    if kind not in ("go", "python"):
        raise SystemExit(f"BENCH_GENERATOR={kind}: go or python")
    return kind


def build_generator() -> None:
    """Build bench/loadgen once (again when its source is newer than the binary)."""
    if generator_kind() != "go":
        return
    sources = [p.stat().st_mtime for p in LOADGEN_SOURCE.iterdir()]
    if LOADGEN_BINARY.exists() and LOADGEN_BINARY.stat().st_mtime >= max(sources):
        return
    go = shutil.which("go")
    if go is None:
        raise SystemExit("BENCH_GENERATOR=go, but there is no go on PATH")
    LOADGEN_BINARY.parent.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        [go, "build", "-o", str(LOADGEN_BINARY), "."],
        cwd=LOADGEN_SOURCE,
        capture_output=True,
        text=True,
    )
    if built.returncode:
        raise SystemExit(f"building bench/loadgen failed:\n{built.stderr[-3000:]}")


def generate_with_go(args: argparse.Namespace) -> None:
    """The same run as `generate`, sent by bench/loadgen; summarized here alike."""
    import resource

    build_generator()
    records_file = Path(args.records or BENCH_RUN_DIR / f"loadgen-{os.getpid()}.json")
    command = [
        str(LOADGEN_BINARY),
        f"-url={args.url}",
        f"-rate={args.rate}",
        f"-seconds={args.seconds}",
        f"-readers-file={args.readers_file}",
        f"-timeout={args.timeout}",
        f"-seed={int(args.rate)}",
        f"-records={records_file}",
    ]
    if args.flush_at is not None:
        command += [f"-flush-at={args.flush_at}", f"-redis-url={args.redis_url}"]
    if args.readers_after_file:
        command.append(f"-readers-after-file={args.readers_after_file}")
    sent = subprocess.run(command, capture_output=True, text=True)
    if sent.returncode:
        raise SystemExit(f"bench/loadgen failed:\n{sent.stderr[-3000:]}")
    data = json.loads(records_file.read_text())
    if not args.records:
        records_file.unlink()
    records = [tuple(r) for r in data.pop("requests")]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = summarize(records, args.rate, args.seconds) | data
    result.pop("samples", None)
    result["generator_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    print(json.dumps(result))


def run_generator_loop(work: Awaitable[Any]) -> None:
    """Run the load generator on uvloop (`BENCH_GENERATOR_LOOP`, default uvloop; asyncio as
    before): it shares the cores with the systems it loads, and on asyncio's loop it fell
    up to 60-90 ms behind its schedule at twice Photogram's maximum, which, since a latency
    counts from the scheduled time, passes for the system's. Reported as `generator_loop`."""
    if os.environ.get("BENCH_GENERATOR_LOOP", "uvloop") == "uvloop":
        import uvloop

        uvloop.run(work)
    else:
        asyncio.run(work)


if __name__ == "__main__":
    main()
