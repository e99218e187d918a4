"""feed-service settings (PHOTOGRAM_FEED_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_REBUILDS = 8


class FeedServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_FEED_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8104
    # Post bodies stay cached for three days: nearly every feed read shows newer posts.
    post_cache_seconds: int = Field(default=3 * 86400, ge=1)
    # A reader who finds another reader rebuilding the same timeline waits at most this long.
    rebuild_wait_seconds: float = Field(default=5.0, gt=0)
    # Timeline rebuilds one process runs at once; past it a fast 503 (0: no bound). Unset:
    # 8 in the distributed mode, none in the embedded one (service.RebuildSlots).
    max_rebuilds: int | None = Field(default=None, ge=0)
    # While every rebuild slot is taken, this many reads at once per process are served by
    # the pull query through the owners instead of a 503 (0: none are; service.PullSlots).
    max_pull_reads: int = Field(default=16, ge=0)
    # How often a feed read may refresh the reader's last-active time in user-service; the
    # timelines' TTL keeps an hour of margin over it (timeline_store_for).
    seen_every_seconds: int = Field(default=1800, ge=1, le=3600)
    # A read re-arms the timeline's TTL only when this much of it has run down.
    refresh_ttl_every_seconds: int = Field(default=3600, ge=0)

    def rebuild_bound(self, *, embedded: bool) -> int:
        """The rebuild bound per process (0: none)."""
        if self.max_rebuilds is not None:
            return self.max_rebuilds
        return 0 if embedded else DEFAULT_MAX_REBUILDS
