"""Password hashing parameters and where it runs; settings that refuse weak secrets."""

from __future__ import annotations

import asyncio
import secrets
import threading
from typing import Any

import pytest
from argon2 import Type, extract_parameters
from pydantic import ValidationError

from photogram_common.settings import PlatformSettings
from user_service.passwords import Passwords
from user_service.settings import UserServiceSettings

GOOD_SECRET = secrets.token_urlsafe(48)


def test_the_default_cost_is_owasps(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suites lower the cost in their environment; what an operator gets is OWASP's.
    monkeypatch.delenv("PHOTOGRAM_USERS_PASSWORD_MEMORY_KIB", raising=False)
    monkeypatch.delenv("PHOTOGRAM_USERS_PASSWORD_TIME_COST", raising=False)
    settings = UserServiceSettings()
    assert (settings.password_memory_kib, settings.password_time_cost) == (19456, 2)


async def test_hashes_use_owasp_argon2id_parameters() -> None:
    produced = await Passwords().hash("correct horse battery")
    algorithm, version, params, salt, digest = produced.split("$")[1:]
    assert (algorithm, version) == ("argon2id", "v=19")
    assert params == "m=19456,t=2,p=1"
    parameters = extract_parameters(produced)
    assert parameters.type is Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)
    assert parameters.salt_len >= 16
    assert parameters.hash_len >= 32
    assert salt
    assert digest
    assert "correct horse battery" not in produced


async def test_hashes_are_salted_and_verify() -> None:
    passwords = Passwords()
    first, second = await passwords.hash("same password"), await passwords.hash("same password")
    assert first != second
    assert await passwords.verify(first, "same password")
    assert not await passwords.verify(first, "other password")
    assert not await passwords.verify(None, "same password")
    assert not await passwords.verify("not a hash", "same password")


async def test_a_hash_made_at_another_cost_still_verifies() -> None:
    cheap, owasp = Passwords(memory_kib=1024, time_cost=1), Passwords()
    made = await cheap.hash("same password")
    assert "m=1024,t=1,p=1" in made
    assert await owasp.verify(made, "same password")
    assert not await owasp.verify(made, "other password")


class _SpyHasher:
    """Delegates to the real hasher and notes the thread each hash and verify runs on."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.threads: list[int] = []

    def hash(self, password: str) -> str:
        self.threads.append(threading.get_ident())
        return str(self.real.hash(password))

    def verify(self, password_hash: str, password: str) -> bool:
        self.threads.append(threading.get_ident())
        return bool(self.real.verify(password_hash, password))


async def test_hashing_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    passwords = Passwords()
    spy = _SpyHasher(passwords.hasher)
    monkeypatch.setattr(passwords, "hasher", spy)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # let the ticker start
    started = ticks
    produced = await passwords.hash("correct horse battery")
    during_hash = ticks - started
    assert await passwords.verify(produced, "correct horse battery")
    stop.set()
    await task
    # The loop kept serving other tasks while the hash was computed.
    assert during_hash > 0
    assert len(spy.threads) == 2
    assert threading.get_ident() not in spy.threads


@pytest.mark.parametrize("field", ["jwt_secret", "internal_secret"])
@pytest.mark.parametrize(
    "value", ["", "changeme", "secret", "photogram", "x" * 31, "é" * 15, "development-secret"]
)
def test_distributed_mode_refuses_a_short_or_default_secret(field: str, value: str) -> None:
    secrets_ = {"jwt_secret": GOOD_SECRET, "internal_secret": GOOD_SECRET, field: value}
    with pytest.raises(ValidationError, match=field.upper()):
        PlatformSettings(mode="distributed", **secrets_)


def test_distributed_mode_refuses_a_secret_from_the_environment_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PHOTOGRAM_MODE", "distributed")
    monkeypatch.setenv("PHOTOGRAM_JWT_SECRET", "changeme")
    monkeypatch.setenv("PHOTOGRAM_INTERNAL_SECRET", GOOD_SECRET)
    with pytest.raises(ValidationError):
        PlatformSettings()


def test_distributed_mode_takes_long_random_secrets() -> None:
    settings = PlatformSettings(
        mode="distributed", jwt_secret=GOOD_SECRET, internal_secret=secrets.token_hex(16)
    )
    assert not settings.embedded


def test_embedded_mode_may_leave_secrets_to_the_data_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PHOTOGRAM_MODE", "PHOTOGRAM_JWT_SECRET", "PHOTOGRAM_INTERNAL_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert PlatformSettings().embedded
    with pytest.raises(ValidationError):
        PlatformSettings(jwt_secret="changeme")
