"""What every case does through the public API: authors, followers, uploads, and the check.

A case's crowd is fresh users: one author per partition of the posts topic (so a stalled
partition shows) and a few followers who follow every author and have read their feed once
(their timelines are built). Uploads stream in during the fault; every 201 is an
acknowledged post. After recovery each author posts once more, then the check polls the
gateway until every follower's feed holds every post of the authors exactly once and the
counts are exact, or the 60 s deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka.partitioner import DefaultPartitioner
from stack import PARTITIONS

from helpers import Api, tiny_jpeg

DEADLINE = 60.0  # the contract: delivered within 60 s of recovery
REQUEST_TIMEOUT = 15.0


def partition_of(user_id: str) -> int:
    """The partition Kafka's default partitioner gives an event keyed by this author."""
    partitions = list(range(PARTITIONS))
    return int(DefaultPartitioner()(user_id.encode(), partitions, partitions))


@dataclass
class Crowd:
    authors: list[dict[str, Any]]
    followers: list[dict[str, Any]]


async def follow(api: Api, follower: dict[str, Any], author: dict[str, Any]) -> None:
    response = await api.client.post(
        f"/api/users/{author['id']}/follow", headers=follower["headers"]
    )
    assert response.status_code == 200, response.text


async def feed(client: httpx.AsyncClient, user: dict[str, Any]) -> tuple[int, list[str]]:
    """(status, every post ID of the feed, paging to the end); status of the first non-200."""
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/feed", params=params, headers=user["headers"])
        if response.status_code != 200:
            return response.status_code, seen
        page = response.json()
        seen += [item["post_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return 200, seen


async def signup(api: Api, username: str, refused: Counter[str] | None = None) -> dict[str, Any]:
    """Api.signup, retried for up to 30 s while the API answers 5xx (counted in `refused`)."""
    body = {
        "username": username,
        "email": f"{username}@example.com",
        "password": "correct horse battery",
    }
    deadline = time.monotonic() + 30
    refused_before = False
    while True:
        try:
            response = await api.client.post("/api/auth/signup", json=body)
            outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            response, outcome = None, type(exc).__name__
        if response is not None and response.status_code == 409 and refused_before:
            # An earlier try went through but its answer was lost: log in instead.
            response = await api.client.post(
                "/api/auth/login", json={"login": username, "password": body["password"]}
            )
            outcome = f"login:{response.status_code}"
        if response is not None and response.status_code in (200, 201):
            data: dict[str, Any] = response.json()
            data["headers"] = {"Authorization": f"Bearer {data['access_token']}"}
            data["id"] = data["user"]["user_id"]
            return data
        refused_before = True
        if refused is not None:
            refused[f"signup:{outcome}"] += 1
        retriable = response is None or response.status_code >= 500
        if not retriable or time.monotonic() > deadline:
            text = response.text if response is not None else ""
            raise AssertionError(f"signup {username}: {outcome} {text}")
        await asyncio.sleep(0.25)


async def make_crowd(
    api: Api, tag: str, *, followers: int = 3, cold: int = 0, refused: Counter[str] | None = None
) -> tuple[Crowd, list[dict[str, Any]]]:
    """Authors covering every partition, warm followers (fed once) and cold ones (never read)."""
    by_partition: dict[int, dict[str, Any]] = {}
    for i in range(PARTITIONS * 6):
        user = await signup(api, f"{tag}a{i}", refused)
        by_partition.setdefault(partition_of(user["id"]), user)
        if len(by_partition) == PARTITIONS:
            break
    authors = [by_partition[p] for p in sorted(by_partition)]
    warm = [await signup(api, f"{tag}f{i}", refused) for i in range(followers)]
    unread = [await signup(api, f"{tag}c{i}", refused) for i in range(cold)]
    for reader in (*warm, *unread):
        for author in authors:
            await follow(api, reader, author)
    # Authors read too: their own timelines are built, and a post's fan-out writes its
    # author's timeline before its followers' (what worker-kill9 watches for).
    for reader in (*warm, *authors):
        status, ids = await feed(api.client, reader)
        assert (status, ids) == (200, []), (status, ids)
    return Crowd(authors=authors, followers=[*warm, *unread]), unread


async def upload(client: httpx.AsyncClient, author: dict[str, Any]) -> tuple[str | None, str]:
    """One photo post; (post ID, "201") when acknowledged, else (None, what happened)."""
    try:
        response = await client.post(
            "/api/upload",
            headers=author["headers"],
            data={"caption": "fault suite"},
            files=[("file", ("photo.jpg", tiny_jpeg(), "image/jpeg"))],
            timeout=REQUEST_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        return None, type(exc).__name__
    if response.status_code == 201:
        return str(response.json()["post_id"]), "201"
    return None, str(response.status_code)


async def warm_up(api: Api, deadline: float) -> int:
    """One acknowledged upload before the cases (the image pool starts on the first)."""
    user = await signup(api, "warmup")
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        post, _ = await upload(api.client, user)
        if post is not None:
            return tries
        await asyncio.sleep(1)
    raise AssertionError("no upload acknowledged before the cases")


async def writable(api: Api, name: str, deadline: float) -> tuple[float, Counter[str]]:
    """Wait until a signup and an upload succeed through the gateway (the next case needs
    both); return how long that took and what was answered meanwhile."""
    started = time.monotonic()
    refused: Counter[str] = Counter()
    user: dict[str, Any] | None = None
    attempt = 0
    while time.monotonic() < deadline:
        try:
            if user is None:
                attempt += 1
                username = f"{name}{attempt}"
                body = {
                    "username": username,
                    "email": f"{username}@example.com",
                    "password": "correct horse battery",
                }
                response = await api.client.post("/api/auth/signup", json=body)
                if response.status_code == 201:
                    user = {
                        "headers": {"Authorization": f"Bearer {response.json()['access_token']}"}
                    }
                else:
                    refused[f"signup:{response.status_code}"] += 1
            if user is not None:
                post, outcome = await upload(api.client, user)
                if post is not None:
                    return time.monotonic() - started, refused
                refused[f"upload:{outcome}"] += 1
        except httpx.HTTPError as exc:
            refused[type(exc).__name__] += 1
        await asyncio.sleep(0.25)
    raise AssertionError(f"no signup and upload through the gateway within the deadline: {refused}")


@dataclass
class Uploads:
    """Posts streamed by a few uploaders at a bounded rate until stopped."""

    client: httpx.AsyncClient
    authors: list[dict[str, Any]]
    rate: float = 4.0  # uploads per second, all uploaders together
    concurrency: int = 3
    acked: dict[str, str] = field(default_factory=dict)  # post ID -> author ID
    outcomes: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _next: int = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.concurrency)]

    async def _loop(self) -> None:
        interval = self.concurrency / self.rate
        while not self._stop.is_set():
            started = time.monotonic()
            author = self.authors[self._next % len(self.authors)]
            self._next += 1
            post, outcome = await upload(self.client, author)
            self.outcomes[outcome] += 1
            if post is not None:
                self.acked[post] = author["id"]
            with contextlib.suppress(TimeoutError):
                pause = interval - (time.monotonic() - started)
                await asyncio.wait_for(self._stop.wait(), max(0.0, pause))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def one_each(self, deadline: float) -> None:
        """After recovery: one acknowledged post by every author (retried until the deadline)."""

        async def one(author: dict[str, Any]) -> None:
            while time.monotonic() < deadline:
                post, outcome = await upload(self.client, author)
                self.outcomes[f"after:{outcome}"] += 1
                if post is not None:
                    self.acked[post] = author["id"]
                    return
                await asyncio.sleep(0.5)
            raise AssertionError(f"no post by {author['id']} acknowledged after recovery")

        await asyncio.gather(*(one(a) for a in self.authors))

    def failures(self) -> str:
        bad = {k: v for k, v in self.outcomes.items() if not k.endswith("201")}
        return ",".join(f"{k}:{v}" for k, v in sorted(bad.items())) or "none"


@dataclass
class Delivery:
    acknowledged: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery: float | None = None  # seconds from recovery to complete delivery
    problems: list[str] = field(default_factory=list)


async def author_posts(
    client: httpx.AsyncClient, viewer: dict[str, Any], author_id: str
) -> list[str]:
    found: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            f"/api/users/{author_id}/posts", params=params, headers=viewer["headers"]
        )
        response.raise_for_status()
        page = response.json()
        found += [item["post_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def await_delivery(
    client: httpx.AsyncClient, crowd: Crowd, acked: dict[str, str], recovered: float
) -> Delivery:
    """Poll until every follower's feed is every post of the authors, once, and the counts
    are exact; at most until recovery + DEADLINE. Duplicates seen in any poll count."""
    result = Delivery(acknowledged=len(acked))
    viewer = crowd.followers[0]
    duplicated: set[tuple[str, str]] = set()
    problems: list[str] = ["not checked"]
    last_feed: dict[str, set[str]] = {}  # each reader's last page that answered 200
    while True:
        problems = []
        try:
            created: set[str] = set()
            for author in crowd.authors:
                posts = await author_posts(client, viewer, author["id"])
                created |= set(posts)
                profile = (
                    await client.get(f"/api/users/{author['id']}", headers=viewer["headers"])
                ).json()
                if profile["posts_count"] != len(posts):
                    problems.append(
                        f"posts_count {profile['posts_count']} != {len(posts)} posts of "
                        f"{author['id']}"
                    )
                if profile["followers_count"] != len(crowd.followers):
                    problems.append(
                        f"followers_count {profile['followers_count']} != {len(crowd.followers)}"
                    )
            missing_rows = set(acked) - created
            if missing_rows:
                problems.append(f"{len(missing_rows)} acknowledged posts missing from post-service")
            for reader in crowd.followers:
                status, ids = await feed(client, reader)
                if status != 200:
                    problems.append(f"feed of {reader['id']}: HTTP {status}")
                    continue
                duplicated |= {(reader["id"], p) for p, n in Counter(ids).items() if n > 1}
                have = last_feed[reader["id"]] = set(ids)
                if have - created:
                    problems.append(f"{len(have - created)} posts in a feed that no author made")
                if created - have:
                    problems.append(f"feed of {reader['id']} lacks {len(created - have)} posts")
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            problems.append(f"API: {type(exc).__name__} {exc}")
        if duplicated:
            problems.append(f"{len(duplicated)} (reader, post) pairs seen twice")
        if not problems:
            result.recovery = time.monotonic() - recovered
            break
        if time.monotonic() > recovered + DEADLINE:
            break
        await asyncio.sleep(0.5)
    delivered_to_all = set(acked)
    for reader in crowd.followers:
        delivered_to_all &= last_feed.get(reader["id"], set())
    result.delivered = len(delivered_to_all)
    result.lost = len(set(acked) - delivered_to_all)
    result.duplicated = len(duplicated)
    result.problems = problems
    return result
