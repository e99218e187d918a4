"""Password hashing: argon2id, by default with OWASP's parameters, off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2


class Passwords:
    """Hashes and verifies passwords in a worker thread, so the loop serves on meanwhile.

    A hash carries its own parameters, so one made at another cost still verifies; a
    login that names nobody is checked against a dummy hash of the same cost, so both
    cases take the same time.
    """

    def __init__(
        self, *, memory_kib: int = OWASP_MEMORY_KIB, time_cost: int = OWASP_TIME_COST
    ) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=1,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy = self.hasher.hash("photogram-no-such-user")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; the same work is done for an unknown user."""
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return bool(
                self.hasher.verify(password_hash or self._dummy, password)
                and password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
