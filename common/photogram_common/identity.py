"""Who is calling: user access tokens (public) and the gateway's internal identity tokens.

The gateway verifies a client's access token, then calls services with a short-lived
internal token signed by a separate secret. Services accept only that: a bare user-id
header, or a client's own access token, is not an identity behind the gateway.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import jwt
from photogram_contracts.identity import Identity

ALGORITHM = "HS256"
ACCESS_AUDIENCE = "photogram-api"
INTERNAL_AUDIENCE = "photogram-internal"
INTERNAL_HEADER = "x-photogram-identity"
INTERNAL_TTL_SECONDS = 60


class InvalidToken(Exception):
    """The token is missing, malformed, expired, forged or of the wrong kind."""


class _Verified:
    """Tokens already verified, with their expiry: a token's claims never change, so a
    repeat of the same string (a client's next request, the gateway's next call) needs only
    its expiry checked, not a second HMAC and JSON decode (~60 µs of a ~1 ms hop).
    Bounded: the least recently used entry goes first."""

    def __init__(self, size: int = 65_536) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, str], tuple[Identity, int]] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> Identity | None:
        found = self._entries.get(key)
        if found is None:
            return None
        identity, expires = found
        if time.time() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return identity

    def put(self, key: tuple[str, str, str], identity: Identity, expires: int) -> None:
        self._entries[key] = (identity, expires)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


_verified = _Verified()
# The internal token the gateway last signed for each identity, reused for half its life.
_signed: dict[tuple[str, Identity], tuple[str, int]] = {}
_SIGNED_MAX = 65_536


def issue_access_token(*, secret: str, identity: Identity, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": str(identity.user_id),
        "name": identity.username,
        "aud": ACCESS_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if identity.session_id:
        claims["sid"] = str(identity.session_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _decode(token: str, *, secret: str, audience: str) -> Identity:
    key = (audience, secret, token)
    known = _verified.get(key)
    if known is not None:
        return known
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
        expires = int(claims["exp"])
        session = claims.get("sid", "0")
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(str(exc)) from exc
    # Only the canonical decimal form: int() would also take " 12", "+12", "1_2" or "١٢".
    if not (isinstance(subject, str) and subject.isascii() and subject.isdigit()):
        raise InvalidToken("bad subject")
    user_id = int(subject)
    # 0 is a service calling another service; only internal tokens may carry it.
    if user_id >= 1 << 63 or (user_id == 0 and audience != INTERNAL_AUDIENCE):
        raise InvalidToken("bad subject")
    if not (isinstance(session, str) and session.isascii() and session.isdigit()):
        raise InvalidToken("bad session")
    identity = Identity(user_id=user_id, username=username, session_id=int(session))
    _verified.put(key, identity, expires)
    return identity


def verify_access_token(token: str, *, secret: str) -> Identity:
    return _decode(token, secret=secret, audience=ACCESS_AUDIENCE)


def issue_internal_token(*, secret: str, identity: Identity) -> str:
    now = int(time.time())
    key = (secret, Identity(user_id=identity.user_id, username=identity.username))
    signed = _signed.get(key)
    if signed is not None and now - signed[1] < INTERNAL_TTL_SECONDS // 2:
        return signed[0]
    claims = {
        "sub": str(identity.user_id),
        "name": identity.username,
        "aud": INTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + INTERNAL_TTL_SECONDS,
    }
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    if len(_signed) >= _SIGNED_MAX:
        _signed.clear()
    _signed[key] = (token, now)
    return token


def verify_internal_token(token: str, *, secret: str) -> Identity:
    return _decode(token, secret=secret, audience=INTERNAL_AUDIENCE)
