"""An upload goes one way: media-service stores the media and signs a claim on them, and
post-service makes the post of a valid claim without calling media-service back; a claim
that is forged, expired, another user's or already used makes no post (docs/decisions.md,
"An upload goes one way")."""

from __future__ import annotations

import time
from typing import Any

import pytest
from photogram_contracts.identity import Identity

import imagefactory as make
from helpers import Api
from media_helpers import stored, swept, upload
from photogram_common.media_claims import sign_claim, verify_claim
from photogram_common.problems import Problem
from post_service.schemas import PostCreate


@pytest.fixture
def claims(system: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The claims post-service is given, as it is given them."""
    posts = system.services["post-service"].state.posts
    real_create = posts.create
    seen: list[str] = []

    async def create(caller: Identity, data: PostCreate) -> Any:
        seen.append(data.claim)
        return await real_create(caller, data)

    monkeypatch.setattr(posts, "create", create)
    return seen


def identity(user: dict[str, Any]) -> Identity:
    return Identity(user_id=int(user["id"]), username=user["user"]["username"])


async def refused(system: Any, user: dict[str, Any], claim: str) -> dict[str, Any]:
    posts = system.services["post-service"].state.posts
    with pytest.raises(Problem) as problem:
        await posts.create(identity(user), PostCreate(caption="again", claim=claim))
    assert problem.value.status == 422
    extra: dict[str, Any] = problem.value.extra or {}
    assert [e["loc"] for e in extra["errors"]] == [["body", "claim"]]
    return extra


async def test_the_post_is_made_without_calling_media_service_back(
    api: Api, system: Any, claims: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    media_app = system.services["media-service"]
    asked: list[str] = []
    # Built on its first request: build it now if none came yet.
    real_app = media_app.middleware_stack or media_app.build_middleware_stack()

    async def observed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            asked.append(scope["path"])
        await real_app(scope, receive, send)

    monkeypatch.setattr(media_app, "middleware_stack", observed)
    response = await upload(api, ana["headers"], [("a.jpg", make.jpeg(64, 48), "image/jpeg")])
    assert response.status_code == 201, response.text
    # One call to media-service, the upload's; the post's making asked it nothing.
    assert asked == ["/internal/uploads"]
    [claim] = claims
    secret = system.services["post-service"].state.internal_secret
    named = verify_claim(claim, secret=secret, owner_id=int(ana["id"]))
    assert [m.model_dump(mode="json") for m in named] == response.json()["media"]


async def test_a_claim_makes_one_post_only(api: Api, system: Any, claims: list[str]) -> None:
    ana = await api.signup("ana")
    response = await upload(api, ana["headers"], [("a.jpg", make.jpeg(64, 48), "image/jpeg")])
    assert response.status_code == 201, response.text
    before = await stored(system)
    extra = await refused(system, ana, claims[0])
    assert "another post" in extra["errors"][0]["msg"]
    assert await stored(system) == before


async def test_another_users_claim_makes_no_post(
    api: Api, system: Any, claims: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, bob = await api.signup("ana"), await api.signup("bob")
    posts = system.services["post-service"].state.posts

    async def not_made(caller: Identity, data: PostCreate) -> Any:
        claims.append(data.claim)
        raise RuntimeError("post-service went away")

    # Ana's upload stores its media, but its post is not made: its claim is left unused.
    with monkeypatch.context() as patch:
        patch.setattr(posts, "create", not_made)
        files = [("a.jpg", make.jpeg(64, 48), "image/jpeg")]
        assert (await upload(api, ana["headers"], files)).status_code == 503
    before = await stored(system)
    assert before["media"] == 1
    await refused(system, bob, claims[0])
    assert await stored(system) == before
    # Still no post of them: the sweeper deletes them.
    assert (await swept(system))["media"] == 0


async def test_a_forged_or_expired_claim_makes_no_post(api: Api, system: Any) -> None:
    ana = await api.signup("ana")
    secret = system.services["post-service"].state.internal_secret
    media = system.services["media-service"].state.media
    before = await stored(system)
    response = await upload(api, ana["headers"], [("a.jpg", make.jpeg(64, 48), "image/jpeg")])
    [item] = response.json()["media"]
    read = await media.get(int(item["media_id"]))
    owner = int(ana["id"])
    forged = sign_claim(secret="f" * 48, owner_id=owner, media=[read], ttl_seconds=600)
    await refused(system, ana, forged)
    expired = sign_claim(
        secret=secret, owner_id=owner, media=[read], ttl_seconds=60, now=time.time() - 61
    )
    extra = await refused(system, ana, expired)
    assert "expired" in extra["errors"][0]["msg"]
    assert (await stored(system))["posts"] == before["posts"] + 1
