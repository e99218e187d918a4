"""A claim on stored media: media-service's signed word that it stored these media for this
owner, which post-service checks on its own, without calling media-service back.

media-service signs one when it has stored an upload (an HS256 token under the internal
secret, with an audience of its own, so it is never taken for an identity token or the other
way round); it names the owner, carries the media as media-service shows them and expires
soon after. post-service makes a post of the media a valid claim names, for its owner only.
Until then the media are pending; media-service's sweeper settles them once their claim can
no longer be used (docs/decisions.md, "An upload goes one way").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jwt
from photogram_contracts.schemas import MediaRead
from pydantic import TypeAdapter, ValidationError

ALGORITHM = "HS256"
CLAIM_AUDIENCE = "photogram-media-claim"
MAX_MEDIA = 10
_MEDIA = TypeAdapter(list[MediaRead])


class InvalidClaim(Exception):
    """The claim is malformed, forged, expired, another owner's or names no usable media."""


def sign_claim(
    *,
    secret: str,
    owner_id: int,
    media: Sequence[MediaRead],
    ttl_seconds: float,
    now: float | None = None,
) -> str:
    """A claim on `media` for `owner_id`, good for `ttl_seconds` from `now`."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "aud": CLAIM_AUDIENCE,
        "sub": str(owner_id),
        "iat": issued,
        "exp": issued + max(1, int(ttl_seconds)),
        "media": [m.model_dump(mode="json") for m in media],
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_claim(
    token: str, *, secret: str, owner_id: int, now: float | None = None
) -> list[MediaRead]:
    """The media a valid, unexpired claim of `owner_id` names, in upload order; else
    InvalidClaim (the signature, the audience, the owner, the expiry and the media are all
    checked here, with nothing asked of media-service)."""
    try:
        # The algorithm is pinned: a token naming another one (or "none") is refused. The
        # expiry is checked below, against `now` (the issuer's clock need not agree).
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=CLAIM_AUDIENCE,
            options={
                "require": ["exp", "iat", "sub", "aud"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
        expires = int(claims["exp"])
        media = _MEDIA.validate_python(claims.get("media"))
    except (jwt.PyJWTError, ValidationError, ValueError, TypeError, KeyError) as exc:
        raise InvalidClaim("malformed or forged") from exc
    if (time.time() if now is None else now) >= expires:
        raise InvalidClaim("expired")
    if claims["sub"] != str(owner_id):
        raise InvalidClaim("another owner's")
    ids = [m.media_id for m in media]
    if not 1 <= len(ids) <= MAX_MEDIA or len(set(ids)) != len(ids):
        raise InvalidClaim("not 1 to 10 distinct media")
    if any(not (m.media_id.isascii() and m.media_id.isdigit()) for m in media):
        raise InvalidClaim("media IDs that are not IDs")
    if any(m.user_id != str(owner_id) for m in media):
        raise InvalidClaim("media that are not the owner's")
    return media
