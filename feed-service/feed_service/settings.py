"""feed-service settings (PHOTOGRAM_FEED_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeedServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_FEED_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8104
    post_cache_seconds: int = Field(default=3600, ge=1)
    # A reader who finds another reader rebuilding the same timeline waits at most this long.
    rebuild_wait_seconds: float = Field(default=5.0, gt=0)
    # How often a feed read may refresh the reader's last-active time in user-service.
    seen_every_seconds: int = Field(default=300, ge=1)
