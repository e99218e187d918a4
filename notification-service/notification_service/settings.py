"""notification-service settings (PHOTOGRAM_NOTIFICATIONS_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotificationServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_NOTIFICATIONS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8106
    database_url: str | None = None
    group: str = "notification-service"
    # How long a deleted post is remembered, so that a like or comment event met after the
    # post's deletion makes no notification (the topics keep events 7 days).
    deleted_post_days: float = Field(default=8, gt=0)
