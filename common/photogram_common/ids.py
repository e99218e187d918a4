"""64-bit time-ordered IDs: 41 bits of milliseconds, 10 of worker, 12 of sequence."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# 2026-01-01T00:00:00Z: IDs stay positive 64-bit integers for about 69 years after it.
EPOCH_MS = 1_767_225_600_000
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER_ID = (1 << WORKER_BITS) - 1
_SEQUENCE_MASK = (1 << SEQUENCE_BITS) - 1
_TIME_SHIFT = WORKER_BITS + SEQUENCE_BITS


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class NoWorkerId(RuntimeError):
    """No worker id is held (a lease not yet taken, or lost): no ID can be made safely."""


class IdGenerator:
    """Makes unique, monotonic IDs without coordination, given a distinct worker id."""

    def __init__(self, worker_id: int | None, clock: Callable[[], int] = _now_ms) -> None:
        """`worker_id` None: the ID comes later (a lease, see `assign`); no ID before it."""
        self._worker_id = -1
        if worker_id is not None:
            self.assign(worker_id)
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    @property
    def worker_id(self) -> int | None:
        return None if self._worker_id < 0 else self._worker_id

    def assign(self, worker_id: int) -> None:
        """Set the worker id (once a lease on it is held)."""
        if not 0 <= worker_id <= MAX_WORKER_ID:
            raise ValueError(f"worker_id must be in 0..{MAX_WORKER_ID}")
        self._worker_id = worker_id

    def unassign(self) -> None:
        """Stop making IDs (the lease on the worker id was lost)."""
        self._worker_id = -1

    def next_id(self) -> int:
        """Return the next ID; never smaller than the one before, even if the clock steps back."""
        if self._worker_id < 0:
            raise NoWorkerId("no worker id assigned yet: IDs are not unique without one")
        with self._lock:
            now = self._clock() - EPOCH_MS
            if now <= self._last_ms:
                # Same millisecond, or the clock stepped back: keep counting on the last
                # millisecond and borrow the next one when the sequence is spent.
                self._sequence = (self._sequence + 1) & _SEQUENCE_MASK
                if self._sequence == 0:
                    self._last_ms += 1
            else:
                self._last_ms = now
                self._sequence = 0
            return (
                (self._last_ms << _TIME_SHIFT) | (self._worker_id << SEQUENCE_BITS) | self._sequence
            )


def id_to_unix_ms(snowflake: int) -> int:
    """Return the creation time of an ID in Unix milliseconds."""
    return (snowflake >> _TIME_SHIFT) + EPOCH_MS


def smallest_id_at(unix_ms: int) -> int:
    """Return the smallest ID that can be made at the given Unix millisecond."""
    return max(unix_ms - EPOCH_MS, 0) << _TIME_SHIFT


def parse_id(text: str) -> int | None:
    """Parse a decimal-string ID; None when it is not a positive 63-bit integer."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value < (1 << 63) else None
