# ruff: noqa: ASYNC240 (a bench: local processes, run once, by hand)
"""Delivery benchmark: from an upload's 201 to the post in a follower's home feed.

Runs on the distributed mode on the bench's own stores (started here if it is not up:
`python -m photogram_runner up` with the bench environment; `--down` stops it at the
end). Through the gateway only, as a client would:

- signs up `--authors` authors and `--followers` followers per author (all active), each
  follower follows its author, and reads its feed once (which builds its timeline);
- warm-up uploads (not counted) so Kafka topics, consumer group and connections exist;
- then `--uploads` uploads of a tiny JPEG, one at a time, round-robin over the authors:
  the clock starts when the 201 arrives, then one follower's feed is polled every
  `--poll-ms` (default 10 ms) until the new post is in it. The delay is the 201-to-visible
  time (the path: outbox row -> relay -> Kafka -> fanout-worker -> Redis timeline ->
  feed-service), with a resolution of one poll (its round trip is reported too).

    uv run python bench/delivery.py [--uploads 60] [--authors 5] [--followers 3] [--down]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import bench_env, machine, percentile, revision, runner, today

GATEWAY = "http://127.0.0.1:8000"
PASSWORD = "bench-password-1"


def tiny_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


async def signup(http: httpx.AsyncClient, name: str) -> dict:
    response = await http.post(
        "/api/auth/signup",
        json={"username": name, "email": f"{name}@bench.example", "password": PASSWORD},
    )
    response.raise_for_status()
    body = response.json()
    return {"user_id": body["user"]["user_id"], "token": body["access_token"], "name": name}


def auth(user: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['token']}"}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--authors", type=int, default=5)
    parser.add_argument("--followers", type=int, default=3)
    parser.add_argument("--poll-ms", type=float, default=10)
    parser.add_argument("--timeout", type=float, default=10, help="give up on one post after")
    parser.add_argument("--down", action="store_true", help="stop the services at the end")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    env = bench_env()
    await asyncio.to_thread(runner, "up", env)
    figures: dict = {
        "when": today(),
        "machine": machine(),
        "loadavg_at_start": os.getloadavg(),
        "revision": revision(),
        "command": "uv run python bench/delivery.py " + " ".join(sys.argv[1:]),
    }
    image = tiny_jpeg()
    tag = secrets.token_hex(3)
    try:
        async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as http:
            authors, readers = [], []
            for a in range(args.authors):
                author = await signup(http, f"dl{tag}a{a}")
                authors.append(author)
                mine = []
                for f in range(args.followers):
                    follower = await signup(http, f"dl{tag}a{a}f{f}")
                    r = await http.post(
                        f"/api/users/{author['user_id']}/follow", headers=auth(follower)
                    )
                    r.raise_for_status()
                    (await http.get("/api/feed", headers=auth(follower))).raise_for_status()
                    mine.append(follower)
                readers.append(mine)
            delays, polls, uploads, missing = [], [], [], 0
            for i in range(args.warmup + args.uploads):
                k = i % len(authors)
                author, follower = authors[k], readers[k][i % args.followers]
                u0 = time.perf_counter()
                response = await http.post(
                    "/api/upload",
                    headers=auth(author),
                    files={"file": ("p.jpg", image, "image/jpeg")},
                    data={"caption": f"delivery {i}"},
                )
                created = time.perf_counter()
                if response.status_code != 201:
                    raise SystemExit(f"upload failed: {response.status_code} {response.text[:300]}")
                post_id = response.json()["post_id"]
                seen = None
                while time.perf_counter() - created < args.timeout:
                    p0 = time.perf_counter()
                    feed = await http.get("/api/feed", params={"limit": 5}, headers=auth(follower))
                    polls.append(time.perf_counter() - p0)
                    if any(item["post_id"] == post_id for item in feed.json()["items"]):
                        seen = time.perf_counter()
                        break
                    await asyncio.sleep(args.poll_ms / 1000)
                if i < args.warmup:
                    continue
                uploads.append(created - u0)
                if seen is None:
                    missing += 1
                else:
                    delays.append(seen - created)
            ms = lambda v: round(v * 1000, 1)  # noqa: E731
            figures.update(
                {
                    "uploads": args.uploads,
                    "authors": args.authors,
                    "followers_per_author": args.followers,
                    "poll_ms": args.poll_ms,
                    "not_seen_within_timeout": missing,
                    "delay_ms": {
                        "p50": ms(percentile(delays, 50)),
                        "p90": ms(percentile(delays, 90)),
                        "p99": ms(percentile(delays, 99)),
                        "max": ms(max(delays)),
                        "min": ms(min(delays)),
                    },
                    "upload_201_ms": {
                        "p50": ms(percentile(uploads, 50)),
                        "p99": ms(percentile(uploads, 99)),
                    },
                    "poll_round_trip_ms": {
                        "p50": ms(percentile(polls, 50)),
                        "p99": ms(percentile(polls, 99)),
                    },
                    "within_5s": sum(d <= 5 for d in delays),
                    "within_1s": sum(d <= 1 for d in delays),
                }
            )
    finally:
        if args.down:
            await asyncio.to_thread(runner, "down", env)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
