"""Measure the Redis memory of home timelines in Photogram's key layout.

Fills N timelines (`tl:{<user_id>}`: a sorted set of 800 post ids as 20-digit zero-padded
decimal strings, scored by creation time in Unix milliseconds, plus one sentinel member)
and N recent-posts lists (`rp:{<user_id>}`, 200 entries) on a Redis of its own, once with
Redis's default `zset-max-listpack-entries` and once with 1024, and reports `MEMORY USAGE`
per key and the growth of `INFO memory` used_memory per key.

    uv run python bench/timeline_memory.py                       # prints the figures
    uv run python bench/timeline_memory.py --write-docs docs/operations.md

With `--redis-url` it uses that Redis instead (it runs FLUSHALL on it: never point it at
a Redis that holds data you want).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

TIMELINE_CAP = 800
RECENT_POSTS_CAP = 200
# Photogram ids: 41 bits of ms since 2026-01-01, 10 of worker, 12 of sequence.
EPOCH_MS = 1_767_225_600_000
SENTINEL_MEMBER = "0" * 20
DOCS_BEGIN = "<!-- timeline-memory:begin -->"
DOCS_END = "<!-- timeline-memory:end -->"


@dataclass(frozen=True)
class Layout:
    """One way of writing a timeline entry's member."""

    name: str
    padded: bool


LAYOUTS = (
    Layout("20-digit zero-padded member (the earlier layout)", padded=True),
    Layout("plain decimal member (Photogram's layout)", padded=False),
)


@dataclass(frozen=True)
class Figure:
    """The memory of one key kind under one setting."""

    key_kind: str
    layout: str
    listpack_entries: int
    members: int
    encoding: str
    memory_usage_bytes: float
    used_memory_per_key_bytes: float
    bytes_per_member: float


def post_id(unix_ms: int, rng: random.Random) -> int:
    """Return an id shaped like Photogram's for a post made at `unix_ms`."""
    return ((unix_ms - EPOCH_MS) << 22) | (rng.randrange(1024) << 12) | rng.randrange(4096)


def timeline_entries(rng: random.Random, count: int, now_ms: int) -> dict[str, float]:
    """Return `count` post ids scored by their creation ms, spread over the last 30 days."""
    entries: dict[str, float] = {}
    while len(entries) < count:
        created = now_ms - rng.randrange(30 * 24 * 3600 * 1000)
        entries[str(post_id(created, rng))] = created
    return entries


def pad(entries: dict[str, float], padded: bool) -> dict[str, float]:
    return {(m.zfill(20) if padded else m): s for m, s in entries.items()}


def fill(
    client: redis.Redis,
    *,
    prefix: str,
    keys: int,
    members: int,
    padded: bool,
    sentinel: bool,
    seed: int,
) -> list[str]:
    """Write `keys` sorted sets of `members` entries; return their names."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    names = []
    pipe = client.pipeline(transaction=False)
    for user in range(keys):
        name = f"{prefix}:{{{1_000_000 + user}}}"
        names.append(name)
        mapping = pad(timeline_entries(rng, members, now_ms), padded)
        if sentinel:
            mapping[SENTINEL_MEMBER if padded else "0"] = 0
        pipe.zadd(name, mapping)
        if user % 50 == 49:
            pipe.execute()
    pipe.execute()
    return names


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def measure(
    client: redis.Redis,
    *,
    key_kind: str,
    layout: Layout,
    listpack_entries: int,
    keys: int,
    members: int,
    sentinel: bool,
) -> Figure:
    client.flushall()
    client.config_set("zset-max-listpack-entries", listpack_entries)
    time.sleep(0.2)
    before = used_memory(client)
    names = fill(
        client,
        prefix=key_kind,
        keys=keys,
        members=members,
        padded=layout.padded,
        sentinel=sentinel,
        seed=listpack_entries,
    )
    after = used_memory(client)
    sample = names[:: max(1, len(names) // 200)]
    usages = [client.memory_usage(name, samples=0) or 0 for name in sample]
    encodings = {client.object("encoding", name) for name in sample}
    stored = members + (1 if sentinel else 0)
    per_key = (after - before) / keys
    return Figure(
        key_kind=key_kind,
        layout=layout.name,
        listpack_entries=listpack_entries,
        members=stored,
        encoding=",".join(sorted(e if isinstance(e, str) else e.decode() for e in encodings)),
        memory_usage_bytes=sum(usages) / len(usages),
        used_memory_per_key_bytes=per_key,
        bytes_per_member=per_key / stored,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def own_redis() -> Iterator[str]:
    """Run a throwaway redis-server on loopback and stop it afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing: apt-get install -y redis-server (or pass --redis-url)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tlmem-") as workdir:
        proc = subprocess.Popen(  # noqa: S603
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis.from_url(url).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, {cpu}"


def run(url: str, keys: int) -> tuple[list[Figure], str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    version = str(client.info("server")["redis_version"])
    default = int(client.config_get("zset-max-listpack-entries")["zset-max-listpack-entries"])
    figures = []
    for layout in LAYOUTS:
        for setting in (default, 1024):
            figures.append(
                measure(
                    client,
                    key_kind="tl",
                    layout=layout,
                    listpack_entries=setting,
                    keys=keys,
                    members=TIMELINE_CAP,
                    sentinel=True,
                )
            )
    for setting in (default, 1024):
        figures.append(
            measure(
                client,
                key_kind="rp",
                layout=LAYOUTS[0],
                listpack_entries=setting,
                keys=keys,
                members=RECENT_POSTS_CAP,
                sentinel=False,
            )
        )
    client.flushall()
    return figures, version


def render(figures: list[Figure], *, keys: int, version: str, command: str) -> str:
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        DOCS_BEGIN,
        f'Measured {today} on {machine()}, Redis {version} (`--save "" --appendonly no`),',
        f"{keys} keys of each kind, with `{command}`.",
        "",
        "| key | member layout | zset-max-listpack-entries | members | encoding "
        "| MEMORY USAGE per key | used_memory growth per key | bytes per member |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for f in figures:
        lines.append(
            f"| `{f.key_kind}:{{…}}` | {f.layout} | {f.listpack_entries} | {f.members} "
            f"| {f.encoding} | {f.memory_usage_bytes:,.0f} B "
            f"| {f.used_memory_per_key_bytes:,.0f} B "
            f"| {f.bytes_per_member:.1f} B |"
        )
    lines.append(DOCS_END)
    return "\n".join(lines)


def write_docs(path: Path, block: str) -> None:
    text = path.read_text()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        sys.exit(f"{path} has no {DOCS_BEGIN} … {DOCS_END} block to replace")
    head, rest = text.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    path.write_text(head + block + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000, help="timelines per setting")
    parser.add_argument("--redis-url", help="use this Redis (it gets FLUSHALL) instead of ours")
    parser.add_argument("--write-docs", type=Path, help="replace the figures block in this file")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    command = "uv run python bench/timeline_memory.py " + " ".join(sys.argv[1:])
    with contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(own_redis())
        figures, version = run(url, args.keys)
    block = render(figures, keys=args.keys, version=version, command=command.strip())
    print(block)
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    if args.write_docs:
        write_docs(args.write_docs, block)


if __name__ == "__main__":
    main()
