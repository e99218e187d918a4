# ruff: noqa: S603, S607 (a bench: local processes, run once, by hand)
"""Helpers the Photogram benchmarks share: the machine, percentiles, the bench environment.

The benchmarks run the services on their own databases, Redis database and Kafka topic
prefix (see `bench_env`), so they never touch the data of tests or of a developer's
`make up` on the same backends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://photogram:photogram@127.0.0.1:55432/postgres"
PG_BASE = "postgresql://photogram:photogram@127.0.0.1:55432/"
REDIS_BASE = "redis://127.0.0.1:56379/"
KAFKA = "127.0.0.1:59092"

# The bench's own stores: databases, a Redis database number, a Kafka topic prefix.
BENCH_DBS = {
    "users": "photogram_bench_users",
    "posts": "photogram_bench_posts",
    "media": "photogram_bench_media",
    "notifications": "photogram_bench_notifications",
}
BENCH_REDIS_DB = 6
BENCH_KAFKA_PREFIX = "bench."
BENCH_RUN_DIR = REPO / ".backends" / "bench"


# One lock for the machine, whatever the checkout: the bench databases and ports are shared.
BENCH_LOCK = Path("/tmp/photogram-bench-feed.lock")
_LOCK_HELD = "PHOTOGRAM_BENCH_LOCK_HELD"


@contextlib.contextmanager
def bench_lock(what: str) -> Iterator[None]:
    """Fail at once if another feed bench or generator run (from any checkout) is going.

    The lock is the process's own (flock, released when it exits); the processes it starts
    inherit the right to run under it through the environment.
    """
    if os.environ.get(_LOCK_HELD):
        yield
        return
    with BENCH_LOCK.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"{what}: another run is using the bench databases and ports "
                f"(it holds {BENCH_LOCK}); wait for it to end"
            ) from None
        os.environ[_LOCK_HELD] = "1"
        try:
            yield
        finally:
            os.environ.pop(_LOCK_HELD, None)
            fcntl.flock(handle, fcntl.LOCK_UN)


def pg_url(database: str, *, driver: str = "") -> str:
    prefix = PG_BASE if not driver else PG_BASE.replace("postgresql://", f"postgresql+{driver}://")
    return prefix + database


def bench_env(*, rate_limit: int = 0) -> dict[str, str]:
    """The environment that points the distributed mode at the bench's stores."""
    env = dict(os.environ)
    env.update(
        {
            "PHOTOGRAM_USERS_DATABASE_URL": pg_url(BENCH_DBS["users"], driver="asyncpg"),
            "PHOTOGRAM_POSTS_DATABASE_URL": pg_url(BENCH_DBS["posts"], driver="asyncpg"),
            "PHOTOGRAM_MEDIA_DATABASE_URL": pg_url(BENCH_DBS["media"], driver="asyncpg"),
            "PHOTOGRAM_NOTIFICATIONS_DATABASE_URL": pg_url(
                BENCH_DBS["notifications"], driver="asyncpg"
            ),
            "PHOTOGRAM_REDIS_URL": f"{REDIS_BASE}{BENCH_REDIS_DB}",
            "PHOTOGRAM_KAFKA_BOOTSTRAP": KAFKA,
            "PHOTOGRAM_KAFKA_PREFIX": BENCH_KAFKA_PREFIX,
            "PHOTOGRAM_S3_ENDPOINT_URL": "http://127.0.0.1:58333",
            "PHOTOGRAM_S3_BUCKET": "photogram-media",
            "PHOTOGRAM_S3_ACCESS_KEY": "photogram",
            "PHOTOGRAM_S3_SECRET_KEY": "photogram-secret",
            "PHOTOGRAM_S3_REGION": "us-east-1",
            "PHOTOGRAM_RATE_LIMIT_PER_MINUTE": str(rate_limit),
            "PHOTOGRAM_BACKENDS_DIR": str(BENCH_RUN_DIR),
        }
    )
    return env


def jwt_secret() -> str:
    return (BENCH_RUN_DIR / "services" / ".jwt_secret").read_text().strip()


def ensure_databases() -> None:
    """Create the bench databases that are missing (data generated before a service's
    database existed keeps its others)."""
    names = ",".join(f"'{name}'" for name in BENCH_DBS.values())
    query = f"SELECT datname FROM pg_database WHERE datname IN ({names})"  # noqa: S608
    found = subprocess.run(
        ["psql", PG_ADMIN, "-At", "-c", query], capture_output=True, text=True, check=True
    ).stdout.split()
    for name in set(BENCH_DBS.values()) - set(found):
        subprocess.run(["psql", PG_ADMIN, "-q", "-c", f"CREATE DATABASE {name}"], check=True)


def runner(command: str, env: dict[str, str]) -> None:
    """`python -m photogram_runner up|down` on the bench's stores."""
    if command == "up":
        ensure_databases()
    subprocess.run(
        [sys.executable, "-m", "photogram_runner", command], env=env, check=True, cwd=REPO
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _first_line(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def machine() -> str:
    """One paragraph describing what a figure ran on."""
    cpu = "?"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", info.read()).group(1))  # type: ignore[union-attr]
    debian = (
        Path("/etc/debian_version").read_text().strip()
        if Path("/etc/debian_version").exists()
        else "?"
    )
    try:
        out = subprocess.run(
            ["redis-cli", "-p", "56379", "info", "server"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        redis_v = re.search(r"redis_version:(\S+)", out).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError, subprocess.SubprocessError):
        redis_v = "?"
    pg = _first_line(["psql", PG_ADMIN, "-Atc", "show server_version"])
    fsync = _first_line(["psql", PG_ADMIN, "-Atc", "show fsync"])
    return (
        f"{os.cpu_count()} vCPU ({cpu}, KVM), {mem_kb / 1024 / 1024:.0f} GB RAM, Debian {debian}, "
        f"Python {platform.python_version()}, Redis {redis_v}, PostgreSQL {pg.split()[0]} "
        f"(fsync={fsync}, synchronous_commit=off), Kafka 4.1.0 (KRaft, one node)"
    )


def revision() -> str:
    """The commit measured, with '+dirty' when the checkout has uncommitted service changes."""
    head = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "contracts",
            "common",
            "gateway",
            "user-service",
            "post-service",
            "media-service",
            "feed-service",
            "fanout-worker",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
