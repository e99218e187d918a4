"""user-service settings (PHOTOGRAM_USERS_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class UserServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_USERS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8101
    database_url: str | None = None
    # Writing last-active on every request would be a write per read; once a minute is
    # plenty for a 7-day activity window.
    seen_resolution_seconds: int = 60
    # Event IDs of counted posts are kept past the longest redelivery: a topic's (and the
    # dead letters') retention of 7 days, then purged.
    processed_events_days: int = Field(default=8, ge=1)
