"""The gateway's edge: problem JSON for every error, request IDs, body limits, peers that fail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import gateway.ratelimit as ratelimit
from helpers import Api
from photogram_common.clients import ServiceClient, make_transport
from photogram_common.cursors import encode_cursor

PROBLEM = "application/problem+json"
# What an error body must never show: a stack, SQL, internal hosts or exception names.
LEAKS = (
    "Traceback",
    "SELECT",
    "INSERT",
    "postgres",
    "sqlite",
    "user-service",
    "post-service",
    "media-service",
    "feed-service",
    "RuntimeError",
    "Exception",
    'File "',
)
MB = 1024 * 1024


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"]
    for leak in LEAKS:
        assert leak not in response.text, leak
    assert response.headers["x-request-id"]
    return body


@pytest.fixture
async def ana(api: Api) -> dict[str, Any]:
    return await api.signup("ana")


@pytest.fixture
async def lenient_client(system: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway that receives a 500 as a response instead of the exception."""
    transport = httpx.ASGITransport(app=system.gateway, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


# FastAPI's own errors


@pytest.mark.parametrize("path", ["/api/nope", "/nope", "/api/users/1/nope", "/api", "/internal/x"])
async def test_unknown_path_is_a_problem_404(api: Api, path: str) -> None:
    assert_problem(await api.client.get(path), 404)


async def test_wrong_method_is_a_problem_405(api: Api, ana: dict[str, Any]) -> None:
    response = await api.client.put("/api/users/me", headers=ana["headers"])
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]
    assert_problem(await api.client.patch(f"/api/users/{ana['id']}/follow"), 405)


async def test_validation_errors_are_a_problem_422(api: Api, ana: dict[str, Any]) -> None:
    response = await api.client.get(
        f"/api/users/{ana['id']}/followers", params={"limit": 0}, headers=ana["headers"]
    )
    body = assert_problem(response, 422)
    assert body["errors"]
    assert body["errors"][0]["loc"] == ["query", "limit"]
    body = assert_problem(await api.client.post("/api/auth/login", json={"login": "ana"}), 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "password"]]


async def test_bodies_that_are_not_json(api: Api) -> None:
    assert_problem(
        await api.client.post(
            "/api/auth/login", content=b"{", headers={"content-type": "application/json"}
        ),
        422,
    )
    assert_problem(
        await api.client.post(
            "/api/auth/login",
            content=b'{"login": "\x80"}',
            headers={"content-type": "application/json"},
        ),
        400,
    )
    assert_problem(await api.client.post("/api/auth/login", content=b"login=ana"), 422)


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "-1",
        "0",
        "1.5",
        "1e9",
        "99999999999999999999",
        "1%3Fx%3D1",
        "1%23x",
        "%0A",
        "%2E%2E",
        "1%20",
        "%EF%BC%91",
    ],
)
async def test_ids_that_are_not_ids_are_404(api: Api, ana: dict[str, Any], raw: str) -> None:
    """Nothing from a path segment reaches a service's URL unless it is a decimal ID."""
    for method, path in [
        ("GET", "/api/users/{}"),
        ("POST", "/api/users/{}/follow"),
        ("DELETE", "/api/users/{}/follow"),
        ("GET", "/api/users/{}/followers"),
        ("GET", "/api/users/{}/posts"),
        ("GET", "/api/post/{}"),
        ("DELETE", "/api/post/{}"),
        ("GET", "/api/media/{}"),
    ]:
        url = path.format(raw)
        assert_problem(await api.client.request(method, url, headers=ana["headers"]), 404)
    assert_problem(await api.client.get(f"/api/media/{raw}/small.jpg"), 404)


@pytest.mark.parametrize("name", ["a", "has space", "x%0Ay", "ana%3F", "ana%23", "%2E%2E", "é" * 4])
async def test_usernames_no_account_can_have_are_404(
    api: Api, ana: dict[str, Any], name: str
) -> None:
    response = await api.client.get(f"/api/users/by-username/{name}", headers=ana["headers"])
    assert_problem(response, 404)


async def test_unknown_media_variant_is_404(api: Api) -> None:
    for variant in ("huge", "SMALL", "small%00", "..%2Fsmall"):
        assert_problem(await api.client.get(f"/api/media/123/{variant}.jpg"), 404)


# Request IDs


async def test_request_id_is_echoed_on_success_and_error(api: Api, ana: dict[str, Any]) -> None:
    ok = await api.client.get("/api/users/me", headers={**ana["headers"], "X-Request-ID": "abc-1"})
    assert ok.status_code == 200
    assert ok.headers["x-request-id"] == "abc-1"
    missing = await api.client.get(
        "/api/users/999999999", headers={**ana["headers"], "X-Request-ID": "abc-2"}
    )
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "abc-2"
    unauthorized = await api.client.get("/api/users/me", headers={"X-Request-ID": "abc-3"})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["x-request-id"] == "abc-3"
    unknown = await api.client.get("/api/nope", headers={"X-Request-ID": "abc-4"})
    assert unknown.headers["x-request-id"] == "abc-4"


async def test_request_id_is_generated_when_absent_or_unusable(
    api: Api, ana: dict[str, Any]
) -> None:
    seen = set()
    for headers in ({}, {"X-Request-ID": "x" * 500}, {"X-Request-ID": "bad\x7fid"}):
        for path in ("/api/users/me", "/api/nope"):
            response = await api.client.get(path, headers={**ana["headers"], **headers})
            request_id = response.headers["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
            seen.add(request_id)
    assert len(seen) == 6


async def test_services_see_the_gateway_s_request_id(
    api: Api, ana: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="photogram.request")
    sent = await api.client.get(
        "/api/users/me", headers={**ana["headers"], "X-Request-ID": "trace-me"}
    )
    generated = await api.client.get(f"/api/users/{ana['id']}/posts", headers=ana["headers"])
    generated_id = generated.headers["x-request-id"]
    assert sent.status_code == 200
    assert generated.status_code == 200
    lines = [
        (r.path, r.request_id)
        for r in caplog.records  # type: ignore[attr-defined]
        if r.name == "photogram.request"
    ]
    # The gateway's own line, and the line of each service it called for the request.
    assert ("/api/users/me", "trace-me") in lines
    assert ("/users/me", "trace-me") in lines
    assert (f"/users/{ana['id']}", generated_id) in lines
    assert (f"/users/{ana['id']}/posts", generated_id) in lines


# Body limits


async def test_json_body_over_1_mb_with_content_length_is_413(api: Api) -> None:
    body = b'{"login": "' + b"a" * (MB + 1) + b'", "password": "x"}'
    response = await api.client.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_json_body_over_1_mb_without_content_length_is_413_before_it_is_read(
    api: Api,
) -> None:
    sent = 0
    chunk = b"a" * 65536

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"login": "'
        for _ in range(16 * 8):  # 8 MB, if it were all read
            sent += len(chunk)
            yield chunk

    response = await api.client.post(
        "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert sent <= MB + 2 * len(chunk)


async def test_json_body_under_the_limit_reaches_validation(api: Api) -> None:
    body = {"login": "ana", "password": "p" * (MB - 100)}
    assert_problem(await api.client.post("/api/auth/login", json=body), 422)


# Peers that fail


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peer_at(system: Any, url: str, *, timeout: float) -> ServiceClient:
    return ServiceClient(
        name="user-service",
        base_url=url,
        timeout=timeout,
        transport=make_transport(None),
        internal_secret=system.services["user-service"].state.internal_secret,
    )


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    hung: list[asyncio.Event] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = asyncio.Event()
        hung.append(done)
        await done.wait()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for done in hung:
            done.set()
        server.close()
        await server.wait_closed()


async def test_a_peer_that_is_down_is_a_503(
    api: Api, system: Any, ana: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    down = _peer_at(system, f"http://127.0.0.1:{_closed_port()}", timeout=5)
    monkeypatch.setattr(system.gateway.state.peers, "users", down)
    try:
        response = await api.client.get("/api/users/me", headers=ana["headers"])
        assert_problem(response, 503)
        assert response.headers["retry-after"].isdigit()
        login = await api.client.post(
            "/api/auth/login", json={"login": "ana", "password": "correct horse battery"}
        )
        assert_problem(login, 503)
    finally:
        await down.close()


async def test_a_peer_that_is_slow_is_a_503(
    api: Api, system: Any, ana: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _silent_server() as port:
        slow = _peer_at(system, f"http://127.0.0.1:{port}", timeout=0.2)
        monkeypatch.setattr(system.gateway.state.peers, "users", slow)
        try:
            response = await api.client.get(f"/api/users/{ana['id']}", headers=ana["headers"])
            assert_problem(response, 503)
            assert response.headers["retry-after"].isdigit()
        finally:
            await slow.close()


async def test_a_peer_that_raises_is_a_generic_503(
    api: Api, system: Any, ana: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("SELECT password_hash FROM users -- postgresql://user-service:5432")

    monkeypatch.setattr(system.services["user-service"].state.users, "get", broken)
    response = await api.client.get(
        f"/api/users/{ana['id']}", headers={**ana["headers"], "X-Request-ID": "peer-broke"}
    )
    body = assert_problem(response, 503)
    assert body["detail"] == "A service is unavailable; try again shortly."
    assert response.headers["x-request-id"] == "peer-broke"


async def test_a_gateway_fault_is_a_generic_500_with_the_request_id(
    lenient_client: httpx.AsyncClient, system: Any, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("Traceback: SELECT * FROM users at http://user-service/users/me")

    monkeypatch.setattr(system.gateway.state.peers.users, "call", broken)
    response = await lenient_client.get(
        "/api/users/me", headers={**ana["headers"], "X-Request-ID": "gw-broke"}
    )
    body = assert_problem(response, 500)
    assert body["detail"] == "Something went wrong on our side."
    assert response.headers["x-request-id"] == "gw-broke"


# Rate limits


@pytest.fixture
def frozen_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold the limiter's clock mid-window, so a test never straddles two windows."""
    now = (int(time.time()) // 60) * 60 + 30.0
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: now))


def assert_limited(response: httpx.Response) -> None:
    assert_problem(response, 429)
    assert 1 <= int(response.headers["retry-after"]) <= 60


@pytest.mark.parametrize("system_overrides", [{"rate_limit_per_minute": 5}])
async def test_the_sixth_request_in_a_window_is_429(api: Api, frozen_window: None) -> None:
    ana = await api.signup("ana")  # counted by address, not against ana
    for _ in range(5):
        assert (await api.client.get("/api/users/me", headers=ana["headers"])).status_code == 200
    assert_limited(await api.client.get("/api/users/me", headers=ana["headers"]))
    assert_limited(await api.client.get(f"/api/users/{ana['id']}", headers=ana["headers"]))


@pytest.mark.parametrize("system_overrides", [{"rate_limit_per_minute": 20}])
async def test_signup_and_login_get_a_tenth_of_the_limit(api: Api, frozen_window: None) -> None:
    ana = await api.signup("ana")
    await api.signup("bob")  # max(1, 20 // 10) = 2 per address and window
    third = await api.client.post(
        "/api/auth/signup",
        json={"username": "cyd", "email": "cyd@example.com", "password": "long enough"},
    )
    assert_limited(third)
    login = await api.client.post(
        "/api/auth/login", json={"login": "ana", "password": "correct horse battery"}
    )
    assert_limited(login)
    # The user's own budget is untouched by the address's credential attempts.
    assert (await api.client.get("/api/users/me", headers=ana["headers"])).status_code == 200


@pytest.mark.parametrize("system_overrides", [{"rate_limit_per_minute": 5}])
async def test_anonymous_requests_are_limited_by_address(api: Api, frozen_window: None) -> None:
    statuses = [(await api.client.get("/api/media/123/small.jpg")).status_code for _ in range(6)]
    assert statuses == [404] * 5 + [429]


async def test_zero_turns_the_limits_off(api: Api, system: Any) -> None:
    assert system.gateway.state.policy.per_minute == 0
    ana = await api.signup("ana")
    for i in range(12):
        await api.signup(f"user{i}")
    for _ in range(12):
        response = await api.client.post("/api/auth/login", json={"login": "ana", "password": "x"})
        assert response.status_code == 401
    for _ in range(30):
        assert (await api.client.get("/api/users/me", headers=ana["headers"])).status_code == 200


# The OpenAPI document

PUBLIC_OPERATIONS = {
    ("post", "/api/auth/signup"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/refresh"),
    ("post", "/api/auth/logout"),
    ("get", "/api/users/me"),
    ("get", "/api/users/search"),
    ("patch", "/api/users/me"),
    ("get", "/api/users/{user_id}"),
    ("get", "/api/users/by-username/{username}"),
    ("post", "/api/users/{user_id}/follow"),
    ("delete", "/api/users/{user_id}/follow"),
    ("get", "/api/users/{user_id}/followers"),
    ("get", "/api/users/{user_id}/following"),
    ("get", "/api/users/{user_id}/posts"),
    ("post", "/api/upload"),
    ("get", "/api/post/{post_id}"),
    ("delete", "/api/post/{post_id}"),
    ("get", "/api/feed"),
    ("get", "/api/media/{media_id}"),
    ("get", "/api/media/{media_id}/{variant}.jpg"),
    ("delete", "/api/users/me"),
    ("put", "/api/users/me/avatar"),
    ("delete", "/api/users/me/avatar"),
    ("get", "/api/avatars/{avatar_id}/{variant}.jpg"),
    ("post", "/api/post/{post_id}/like"),
    ("delete", "/api/post/{post_id}/like"),
    ("get", "/api/post/{post_id}/likes"),
    ("post", "/api/post/{post_id}/comments"),
    ("get", "/api/post/{post_id}/comments"),
    ("get", "/api/comments/{comment_id}"),
    ("delete", "/api/comments/{comment_id}"),
    ("get", "/api/notifications"),
    ("get", "/api/notifications/unread-count"),
    ("post", "/api/notifications/mark-read"),
    ("get", "/healthz"),
    ("get", "/readyz"),
}


async def test_openapi_describes_exactly_the_public_api(api: Api) -> None:
    response = await api.client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert operations == PUBLIC_OPERATIONS
    assert "internal" not in response.text.lower()
    assert "HTTPValidationError" not in response.text
    for path, item in document["paths"].items():
        for method, operation in item.items():
            needs_token = "security" in operation
            assert needs_token == (
                path.startswith("/api/")
                and path
                not in (
                    "/api/auth/signup",
                    "/api/auth/login",
                    "/api/auth/refresh",  # the refresh token is the credential
                    "/api/auth/logout",
                    "/api/media/{media_id}/{variant}.jpg",
                    "/api/avatars/{avatar_id}/{variant}.jpg",
                )
            ), path
            for status, described in operation["responses"].items():
                if int(status) >= 400 and path != "/readyz":
                    assert list(described["content"]) == [PROBLEM], (method, path, status)
            if needs_token:
                assert {"401", "429", "503"} <= set(operation["responses"]), (method, path)


@pytest.mark.parametrize(
    "path",
    [
        "/api/users/{id}/followers",
        "/api/users/{id}/following",
        "/api/users/{id}/posts",
        "/api/feed",
    ],
)
async def test_a_cursor_past_the_id_range_is_400(api: Api, ana: dict[str, Any], path: str) -> None:
    cursor = encode_cursor(10**30)
    response = await api.client.get(
        path.format(id=ana["id"]), params={"cursor": cursor}, headers=ana["headers"]
    )
    assert_problem(response, 400)
