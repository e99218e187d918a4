"""Fixed-window rate limits kept in Redis by one atomic script, shared by every replica.

Without Redis the limiter fails open: requests are allowed, unchecked, rather than refused
(every request a 500) or delayed (a Redis that hangs costs each request its timeouts). The
outage is logged once, then at most once a minute with the count let through, and counted
in `RateLimiter.stats`; after a failure Redis is asked again only a few seconds later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from photogram_common.metrics import REDIS_DURATION, timed

log = logging.getLogger(__name__)

# KEYS[1]=counter, KEYS[2] (when the caller has a session)=its revocation mark;
# ARGV[1]=window seconds, ARGV[2]='1' to count. One round trip, no race between INCR and
# EXPIRE; a revoked session is {-1, 0} and is not counted.
_HIT = """
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0} end
if ARGV[2] ~= '1' then return {0, 0} end
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""

# Bound here: tests hold `time.time` still, this clock runs on.
_monotonic = time.monotonic


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int
    # The caller's session was ended (a logout, a reused refresh token): a 401.
    revoked: bool = False


ALLOWED = Verdict(allowed=True, retry_after=0)
REVOKED = Verdict(allowed=False, retry_after=0, revoked=True)


class RateLimiter:
    """Counts requests per subject and window; over `limit` in a window is refused."""

    def __init__(
        self,
        redis: Any,
        *,
        window_seconds: int = 60,
        retry_seconds: float = 5.0,
        log_every_seconds: float = 60.0,
        clock: Callable[[], float] = _monotonic,
    ) -> None:
        self._window = window_seconds
        self._redis = redis
        self._hit = redis.register_script(_HIT)
        self._retry_seconds = retry_seconds
        self._log_every = log_every_seconds
        self._clock = clock
        self._skip_until: float | None = None  # failing open: Redis not asked before this
        self._next_log_at = 0.0
        self._unlogged = 0  # requests let through since the last log line
        # failed_open: requests allowed unchecked; redis_errors: calls to Redis that failed.
        self.stats = {"failed_open": 0, "redis_errors": 0}

    async def ping(self) -> None:
        """Readiness: the Redis the counts are kept in answers."""
        await self._redis.ping()

    async def hit(self, subject: str, *, limit: int, revoked_key: str | None = None) -> Verdict:
        """Count a request of `subject` (unless `limit` is 0: not limited) and, in the same
        call, check the caller's session mark (photogram_common.sessions)."""
        if not limit and revoked_key is None:
            return ALLOWED
        if self._skip_until is not None and self._clock() < self._skip_until:
            return self._fail_open(None)
        window_start = int(time.time()) // self._window
        # The subject is the hash tag: a session's mark shares the counter's slot.
        keys = [f"rl:{{{subject}}}:{window_start}"]
        if revoked_key is not None:
            keys.append(revoked_key)
        try:
            with timed(REDIS_DURATION, op="rate_limit"):
                count, ttl = await self._hit(keys=keys, args=[self._window, "1" if limit else "0"])
        # A Redis Cluster none of whose nodes answers raises RedisClusterException, which
        # is not a RedisError.
        except (RedisError, RedisClusterException, OSError) as exc:
            self.stats["redis_errors"] += 1
            return self._fail_open(exc)
        if self._skip_until is not None:
            log.warning(
                "rate limits are counted again",
                extra={"failed_open": self.stats["failed_open"], "since_last_log": self._unlogged},
            )
            # The next outage is logged at once.
            self._skip_until, self._unlogged, self._next_log_at = None, 0, 0.0
        if int(count) < 0:
            return REVOKED
        if not limit or int(count) <= limit:
            return ALLOWED
        return Verdict(allowed=False, retry_after=max(int(ttl), 1))

    def _fail_open(self, error: BaseException | None) -> Verdict:
        """Allow the request unchecked; log the outage once per interval."""
        now = self._clock()
        if error is not None:
            self._skip_until = now + self._retry_seconds
        self.stats["failed_open"] += 1
        self._unlogged += 1
        if now >= self._next_log_at:
            log.warning(
                "rate limiter cannot reach Redis: requests are allowed unchecked",
                extra={
                    "error": type(error).__name__ if error is not None else None,
                    "failed_open": self.stats["failed_open"],
                    "since_last_log": self._unlogged,
                },
            )
            self._next_log_at = now + self._log_every
            self._unlogged = 0
        return ALLOWED
