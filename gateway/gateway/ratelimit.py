"""Fixed-window rate limits kept in Redis by one atomic script, shared by every replica."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# KEYS[1]=counter; ARGV[1]=window seconds. One round trip, no race between INCR and EXPIRE.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int


class RateLimiter:
    """Counts requests per subject and window; over `limit` in a window is refused."""

    def __init__(self, redis: Any, *, window_seconds: int = 60) -> None:
        self._window = window_seconds
        self._hit = redis.register_script(_HIT)

    async def hit(self, subject: str, *, limit: int) -> Verdict:
        window_start = int(time.time()) // self._window
        key = f"rl:{subject}:{window_start}"
        count, ttl = await self._hit(keys=[key], args=[self._window])
        if int(count) <= limit:
            return Verdict(allowed=True, retry_after=0)
        return Verdict(allowed=False, retry_after=max(int(ttl), 1))
