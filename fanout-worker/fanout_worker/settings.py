"""fanout-worker settings (PHOTOGRAM_FANOUT_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FanoutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_FANOUT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8105
    group: str = "fanout-worker"
    follower_page_size: int = Field(default=5000, ge=1, le=5000)
    backfill_posts: int = Field(default=40, ge=20)
    # How long a post's counts stay cached for the feed (feed-service keeps its bodies as long).
    counts_cache_seconds: int = Field(default=3 * 86400, ge=1)
