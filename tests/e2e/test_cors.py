"""CORS: the origins PHOTOGRAM_CORS_ORIGINS names may call the API from a browser; no other,
and none by default (the web client is same-origin)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from helpers import Api

ALLOWED = "http://localhost:5173"
OTHER = "https://elsewhere.example"
CORS_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
    "access-control-allow-credentials",
)


def preflight(
    origin: str, method: str = "POST", headers: str = "authorization, content-type"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def assert_no_cors(response: httpx.Response) -> None:
    present = [name for name in CORS_HEADERS if name in response.headers]
    assert present == [], present


@pytest.fixture
def origins(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set before the system is composed (list it before `api`): the gateway reads it then."""
    monkeypatch.setenv("PHOTOGRAM_CORS_ORIGINS", f"{ALLOWED}, https://photos.example.com/")
    return ALLOWED


@pytest.fixture
def no_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHOTOGRAM_CORS_ORIGINS", raising=False)


async def test_a_preflight_from_an_allowed_origin_is_answered(origins: str, api: Api) -> None:
    response = await api.client.options(
        "/api/upload", headers=preflight(origins, headers="authorization, idempotency-key")
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == origins
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key", "x-request-id"):
        assert header in allowed, header
    assert int(response.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in response.headers["vary"].lower()
    assert response.headers["x-request-id"]
    # Origins are compared as browsers send them: the trailing slash configured is dropped.
    other = await api.client.options("/api/feed", headers=preflight("https://photos.example.com"))
    assert other.headers["access-control-allow-origin"] == "https://photos.example.com"


async def test_a_preflight_from_another_origin_gets_no_cors_headers(origins: str, api: Api) -> None:
    response = await api.client.options("/api/users/me", headers=preflight(OTHER, "GET"))
    assert_no_cors(response)
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_answers_to_an_allowed_origin_carry_cors_headers_errors_included(
    origins: str, api: Api
) -> None:
    ana = await api.signup("ana")
    ok = await api.client.get("/api/users/me", headers={**ana["headers"], "Origin": origins})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == origins
    exposed = ok.headers["access-control-expose-headers"].lower()
    for header in ("location", "retry-after", "x-request-id", "www-authenticate"):
        assert header in exposed, header
    unauthorized = await api.client.get("/api/users/me", headers={"Origin": origins})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == origins
    missing = await api.client.get("/api/nope", headers={"Origin": origins})
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == origins


async def test_a_fault_answered_to_an_allowed_origin_carries_cors_headers(
    origins: str, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the gateway broke")

    transport = httpx.ASGITransport(app=system.gateway, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        api = Api(client)
        ana = await api.signup("ana")
        monkeypatch.setattr(system.gateway.state.peers.users, "call", broken)
        response = await client.get("/api/users/me", headers={**ana["headers"], "Origin": origins})
    assert response.status_code == 500
    assert response.headers["access-control-allow-origin"] == origins


async def test_answers_to_another_origin_carry_none(origins: str, api: Api) -> None:
    ana = await api.signup("ana")
    response = await api.client.get("/api/users/me", headers={**ana["headers"], "Origin": OTHER})
    assert response.status_code == 200
    assert_no_cors(response)


async def test_no_cors_by_default(no_origins: None, api: Api) -> None:
    for origin in (ALLOWED, OTHER):
        response = await api.client.options("/api/feed", headers=preflight(origin, "GET"))
        assert response.status_code == 405
        assert_no_cors(response)
        response = await api.client.get("/healthz", headers={"Origin": origin})
        assert response.status_code == 200
        assert_no_cors(response)
