"""Who is calling: user access tokens (public) and the gateway's internal identity tokens.

The gateway verifies a client's access token, then calls services with a short-lived
internal token signed by a separate secret. Services accept only that: a bare user-id
header, or a client's own access token, is not an identity behind the gateway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
ACCESS_AUDIENCE = "photogram-api"
INTERNAL_AUDIENCE = "photogram-internal"
INTERNAL_HEADER = "x-photogram-identity"
INTERNAL_TTL_SECONDS = 60


class InvalidToken(Exception):
    """The token is missing, malformed, expired, forged or of the wrong kind."""


@dataclass(frozen=True)
class Identity:
    user_id: int
    username: str


def issue_access_token(*, secret: str, identity: Identity, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": str(identity.user_id),
        "name": identity.username,
        "aud": ACCESS_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _decode(token: str, *, secret: str, audience: str) -> Identity:
    try:
        # The algorithm is pinned: a token naming another one (or "none") is refused.
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["exp", "iat", "sub", "aud"]},
        )
        subject = claims["sub"]
        username = str(claims.get("name", ""))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(str(exc)) from exc
    # Only the canonical decimal form: int() would also take " 12", "+12", "1_2" or "١٢".
    if not (isinstance(subject, str) and subject.isascii() and subject.isdigit()):
        raise InvalidToken("bad subject")
    user_id = int(subject)
    # 0 is a service calling another service; only internal tokens may carry it.
    if user_id >= 1 << 63 or (user_id == 0 and audience != INTERNAL_AUDIENCE):
        raise InvalidToken("bad subject")
    return Identity(user_id=user_id, username=username)


def verify_access_token(token: str, *, secret: str) -> Identity:
    return _decode(token, secret=secret, audience=ACCESS_AUDIENCE)


def issue_internal_token(*, secret: str, identity: Identity) -> str:
    now = int(time.time())
    claims = {
        "sub": str(identity.user_id),
        "name": identity.username,
        "aud": INTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + INTERNAL_TTL_SECONDS,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_internal_token(token: str, *, secret: str) -> Identity:
    return _decode(token, secret=secret, audience=INTERNAL_AUDIENCE)
