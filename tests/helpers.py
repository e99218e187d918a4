"""Helpers for tests: a client of the public API, and waiting for eventual consistency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx


class Api:
    """A client of the public API with a helper to sign up and act as a user."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def signup(self, username: str, **extra: Any) -> dict[str, Any]:
        body = {
            "username": username,
            "email": f"{username}@example.com",
            "password": "correct horse battery",
            **extra,
        }
        response = await self.client.post("/api/auth/signup", json=body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        data["headers"] = {"Authorization": f"Bearer {data['access_token']}"}
        data["id"] = data["user"]["user_id"]
        return data


async def eventually(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109  (a deadline for a polled condition)
    interval: float = 0.05,
) -> Any:
    """Retry an async check until it returns truthy without raising, or fail with its last error."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"condition not met within {timeout} s")


_TINY_JPEG: bytes | None = None


def tiny_jpeg() -> bytes:
    """A small real photo, so tests can make many posts quickly."""
    global _TINY_JPEG
    if _TINY_JPEG is None:
        import imagefactory

        _TINY_JPEG = imagefactory.jpeg(32, 24)
    return _TINY_JPEG


async def post_photo(client: httpx.AsyncClient, user: dict[str, Any], caption: str = "") -> str:
    """Upload one photo as `user`; return the new post's ID."""
    response = await client.post(
        "/api/upload",
        headers=user["headers"],
        data={"caption": caption},
        files=[("file", ("photo.jpg", tiny_jpeg(), "image/jpeg"))],
    )
    assert response.status_code == 201, response.text
    post_id: str = response.json()["post_id"]
    return post_id


async def feed_ids(
    client: httpx.AsyncClient, user: dict[str, Any], *, limit: int = 100
) -> list[str]:
    """Every post ID of the user's feed, paging to the end."""
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/feed", params=params, headers=user["headers"])
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["post_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
