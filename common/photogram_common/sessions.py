"""Where a revoked session is marked for the gateway: `rv:{u:<user>}:<session>` in Redis.

user-service owns sessions (its tables are the truth for refresh tokens); when one ends
(a logout, a reused refresh token) it also sets this mark, for as long as an access token
issued in the session can live. The gateway reads it in the same script call as the
caller's rate limit, so a request costs no extra round trip. The hash tag is the rate
limit's subject (`u:<user>`): on Redis Cluster both keys share a slot.
"""

from __future__ import annotations

from typing import Any

from photogram_contracts.keys import revoked_key


class RevokedSessions:
    """Marks sessions whose access tokens must stop working at once."""

    def __init__(self, redis: Any, *, access_token_ttl_seconds: int) -> None:
        self.redis = redis
        # Past the longest an access token lives, the token ends the session by itself.
        self.ttl_seconds = access_token_ttl_seconds + 60

    async def mark(self, user_id: int, session_id: int) -> None:
        await self.redis.set(revoked_key(user_id, session_id), "1", ex=self.ttl_seconds)
