"""post-service settings (PHOTOGRAM_POSTS_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PostServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_POSTS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8102
    database_url: str | None = None
    # How long an upload's Idempotency-Key is kept (docs/api.md, "Idempotent uploads").
    idempotency_key_hours: float = Field(default=24, gt=0)
