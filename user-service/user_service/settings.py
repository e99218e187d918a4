"""user-service settings (PHOTOGRAM_USERS_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from user_service.passwords import OWASP_MEMORY_KIB, OWASP_TIME_COST


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
    # argon2id's cost: OWASP's m = 19 MiB, t = 2 by default (~45 ms of a core per hash on
    # this machine's cores). The test suites lower it, since they sign up thousands of users.
    password_memory_kib: int = Field(default=OWASP_MEMORY_KIB, ge=1024)
    password_time_cost: int = Field(default=OWASP_TIME_COST, ge=1)
