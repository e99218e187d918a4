"""Attacks on the access token at the gateway, and on the internal identity behind it."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import jwt
import pytest
from photogram_contracts.identity import Identity

from helpers import Api
from photogram_common.identity import (
    ACCESS_AUDIENCE,
    INTERNAL_AUDIENCE,
    INTERNAL_HEADER,
    issue_access_token,
    issue_internal_token,
)

PROBLEM = "application/problem+json"
OTHER_SECRET = "an-attacker-s-own-secret-of-at-least-32-bytes"


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(user_id: str, **changes: Any) -> dict[str, Any]:
    """Valid access-token claims for the user, with keys changed (None drops a key)."""
    now = int(time.time())
    base = {"sub": user_id, "name": "ana", "aud": ACCESS_AUDIENCE, "iat": now, "exp": now + 600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def jwt_secret(system: Any) -> str:
    return str(system.gateway.state.policy.jwt_secret)


def internal_secret(system: Any) -> str:
    return str(system.services["user-service"].state.internal_secret)


async def me_with(api: Api, token: str) -> httpx.Response:
    return await api.client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401
    assert body["title"]
    assert body["detail"]


@pytest.fixture
async def ana(api: Api) -> dict[str, Any]:
    return await api.signup("ana")


async def test_a_valid_token_works(api: Api, ana: dict[str, Any]) -> None:
    response = await api.client.get("/api/users/me", headers=ana["headers"])
    assert response.status_code == 200
    assert response.json()["user_id"] == ana["id"]


async def test_a_token_made_here_with_the_right_secret_works(
    api: Api, system: Any, ana: dict[str, Any]
) -> None:
    token = jwt.encode(claims(ana["id"]), jwt_secret(system), algorithm="HS256")
    assert (await me_with(api, token)).status_code == 200


async def test_no_token(api: Api, ana: dict[str, Any]) -> None:
    assert_unauthorized(await api.client.get("/api/users/me"))


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic YW5hOnB3", "Token abc", "abc"])
async def test_no_bearer_credentials(api: Api, ana: dict[str, Any], header: str) -> None:
    assert_unauthorized(await api.client.get("/api/users/me", headers={"Authorization": header}))


@pytest.mark.parametrize("token", ["abc", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30"])
async def test_malformed_token(api: Api, ana: dict[str, Any], token: str) -> None:
    assert_unauthorized(await me_with(api, token))


async def test_alg_none_token(api: Api, ana: dict[str, Any]) -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims(ana['id']))}."
    assert_unauthorized(await me_with(api, unsigned))
    # The same with the algorithm's name in other cases, and with a signature left on.
    for alg in ("None", "NONE", "nOnE"):
        assert_unauthorized(await me_with(api, f"{_b64({'alg': alg})}.{_b64(claims(ana['id']))}."))
    signed = jwt.encode(claims(ana["id"]), "x" * 32, algorithm="HS256").rsplit(".", 1)[1]
    assert_unauthorized(
        await me_with(api, f"{_b64({'alg': 'none'})}.{_b64(claims(ana['id']))}.{signed}")
    )


async def test_forged_token(api: Api, ana: dict[str, Any]) -> None:
    assert_unauthorized(await me_with(api, jwt.encode(claims(ana["id"]), OTHER_SECRET, "HS256")))


async def test_tampered_claims_break_the_signature(
    api: Api, system: Any, ana: dict[str, Any]
) -> None:
    header, _, signature = issue_access_token(
        secret=jwt_secret(system), identity=Identity(int(ana["id"]), "ana"), ttl_seconds=600
    ).split(".")
    other = _b64(claims(str(int(ana["id"]) + 1)))
    assert_unauthorized(await me_with(api, f"{header}.{other}.{signature}"))


async def test_expired_token(api: Api, system: Any, ana: dict[str, Any]) -> None:
    past = int(time.time()) - 3600
    token = jwt.encode(claims(ana["id"], iat=past - 900, exp=past), jwt_secret(system), "HS256")
    assert_unauthorized(await me_with(api, token))


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "aud"])
async def test_token_without_a_required_claim(
    api: Api, system: Any, ana: dict[str, Any], missing: str
) -> None:
    token = jwt.encode(claims(ana["id"], **{missing: None}), jwt_secret(system), "HS256")
    assert_unauthorized(await me_with(api, token))


@pytest.mark.parametrize("alg", ["HS512", "HS384"])
async def test_right_secret_but_another_algorithm(
    api: Api, system: Any, ana: dict[str, Any], alg: str
) -> None:
    token = jwt.encode(claims(ana["id"]), jwt_secret(system), algorithm=alg)
    assert_unauthorized(await me_with(api, token))


@pytest.mark.parametrize(
    "sub",
    [
        "ana",
        "",
        "1e3",
        "-{id}",
        "0",
        " {id}",
        "{id} ",
        "+{id}",
        "{id}.0",
        "0x{id}",
        "{id}_1",
        "\u0661\u0662",
        "9" * 25,
        12,
        ["{id}"],
        {"id": "{id}"},
    ],
)
async def test_subject_that_is_not_a_user_id(
    api: Api, system: Any, ana: dict[str, Any], sub: Any
) -> None:
    """Only the canonical decimal ID names the user: no sign, space, underscore or other digits."""
    if isinstance(sub, str):
        sub = sub.format(id=ana["id"])
    token = jwt.encode(claims(ana["id"], sub=sub), jwt_secret(system), "HS256")
    assert_unauthorized(await me_with(api, token))


async def test_internal_token_is_not_an_access_token(
    api: Api, system: Any, ana: dict[str, Any]
) -> None:
    identity = Identity(user_id=int(ana["id"]), username="ana")
    internal = issue_internal_token(secret=internal_secret(system), identity=identity)
    assert_unauthorized(await me_with(api, internal))
    # Nor is a token with the internal audience signed by the access secret.
    token = jwt.encode(claims(ana["id"], aud=INTERNAL_AUDIENCE), jwt_secret(system), "HS256")
    assert_unauthorized(await me_with(api, token))


async def test_access_token_is_not_an_internal_identity(system: Any, ana: dict[str, Any]) -> None:
    """A client that reaches a service directly cannot pass its access token as the identity."""
    app = system.services["user-service"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://user-service"
    ) as client:
        response = await client.get("/users/me", headers={INTERNAL_HEADER: ana["access_token"]})
        assert_unauthorized(response)
        # Even signed with the internal secret, the access audience is refused.
        token = jwt.encode(claims(ana["id"]), internal_secret(system), "HS256")
        assert_unauthorized(await client.get("/users/me", headers={INTERNAL_HEADER: token}))
        # And the gateway's own internal token is what works.
        identity = Identity(user_id=int(ana["id"]), username="ana")
        good = issue_internal_token(secret=internal_secret(system), identity=identity)
        assert (await client.get("/users/me", headers={INTERNAL_HEADER: good})).status_code == 200


async def test_token_of_a_deleted_or_unknown_account(api: Api, system: Any) -> None:
    token = jwt.encode(claims("123456789"), jwt_secret(system), "HS256")
    assert_unauthorized(await me_with(api, token))


# Services reached directly, around the gateway

SERVICES = ("user-service", "post-service", "media-service", "feed-service", "notification-service")
# Public by design (api.md): a variant's bytes are fetched with no auth header at all.
PUBLIC_ROUTES = {
    ("media-service", "GET", "/media/{media_id}/{variant}.jpg"),
    ("media-service", "GET", "/avatars/{avatar_id}/{variant}.jpg"),
}
HEALTH = {"/healthz", "/readyz"}


def service_routes(system: Any, name: str) -> list[tuple[str, str]]:
    """Every (method, path) of the service's API, path parameters filled with real-looking IDs."""
    routes = []
    for template, operations in system.services[name].openapi()["paths"].items():
        for method in operations:
            if template in HEALTH or (name, method.upper(), template) in PUBLIC_ROUTES:
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: "ana" if m[1] == "username" else "123", template)
            routes.append((method.upper(), path))
    assert len(routes) >= 2
    return routes


@pytest.mark.parametrize("name", SERVICES)
async def test_a_service_called_directly_needs_the_gateway_s_identity(
    system: Any, ana: dict[str, Any], name: str
) -> None:
    user = Identity(user_id=int(ana["id"]), username="ana")
    forged = [
        issue_internal_token(secret=OTHER_SECRET, identity=user),
        issue_internal_token(secret=OTHER_SECRET, identity=Identity(user_id=0, username="svc")),
        jwt.encode(claims(ana["id"], aud=INTERNAL_AUDIENCE, alg=None), OTHER_SECRET, "HS256"),
        f"{_b64({'alg': 'none'})}.{_b64(claims(ana['id'], aud=INTERNAL_AUDIENCE))}.",
        ana["access_token"],
        ana["id"],
    ]
    transport = httpx.ASGITransport(app=system.services[name])
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}") as client:
        for method, path in service_routes(system, name):
            body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            response = await client.request(method, path, **body)
            assert response.status_code == 401, (method, path, response.text)
            for token in forged:
                response = await client.request(
                    method, path, headers={INTERNAL_HEADER: token}, **body
                )
                assert response.status_code == 401, (method, path, token, response.text)
            # The old habit of trusting a user-id header gets nothing either.
            response = await client.request(method, path, headers={"x-user-id": ana["id"]}, **body)
            assert response.status_code == 401, (method, path)
