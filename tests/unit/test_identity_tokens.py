"""Verified and signed tokens are remembered, never past their expiry."""

from __future__ import annotations

import datetime as dt
import time

import jwt.api_jwt
import pytest
from photogram_contracts.identity import Identity

from photogram_common import identity as tokens
from photogram_common.identity import (
    InvalidToken,
    issue_access_token,
    issue_internal_token,
    verify_access_token,
    verify_internal_token,
)

SECRET = "s" * 48
ANA = Identity(user_id=42, username="ana")


def set_clock(monkeypatch: pytest.MonkeyPatch, at: float) -> None:
    """Both clocks a token meets: ours (issue, the cache) and PyJWT's (expiry checks)."""

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(at, tz)

    monkeypatch.setattr(tokens.time, "time", lambda: at)
    monkeypatch.setattr(jwt.api_jwt, "datetime", Frozen)


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue_access_token(secret=SECRET, identity=ANA, ttl_seconds=5)
    assert verify_access_token(token, secret=SECRET) == ANA
    assert verify_access_token(token, secret=SECRET) == ANA  # from the cache
    set_clock(monkeypatch, time.time() + 6)
    with pytest.raises(InvalidToken):
        verify_access_token(token, secret=SECRET)


def test_a_remembered_token_is_only_good_for_its_secret_and_audience() -> None:
    token = issue_access_token(secret=SECRET, identity=ANA, ttl_seconds=60)
    assert verify_access_token(token, secret=SECRET) == ANA
    with pytest.raises(InvalidToken):
        verify_access_token(token, secret="t" * 48)
    with pytest.raises(InvalidToken):
        verify_internal_token(token, secret=SECRET)


def test_an_internal_token_is_reused_for_half_its_life(monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.time()
    set_clock(monkeypatch, start)
    first = issue_internal_token(secret=SECRET, identity=ANA)
    assert verify_internal_token(first, secret=SECRET) == ANA
    assert issue_internal_token(secret=SECRET, identity=ANA) == first
    assert issue_internal_token(secret="t" * 48, identity=ANA) != first
    set_clock(monkeypatch, start + tokens.INTERNAL_TTL_SECONDS // 2 + 1)
    renewed = issue_internal_token(secret=SECRET, identity=ANA)
    assert renewed != first
    # The renewed token still has most of its life ahead: it verifies well past the old one's.
    set_clock(monkeypatch, start + tokens.INTERNAL_TTL_SECONDS + 1)
    with pytest.raises(InvalidToken):
        verify_internal_token(first, secret=SECRET)
    assert verify_internal_token(renewed, secret=SECRET) == ANA
