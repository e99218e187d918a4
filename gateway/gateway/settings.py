"""gateway settings (PHOTOGRAM_GATEWAY_*); its port is PHOTOGRAM_PORT."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    max_json_body_bytes: int = 1024 * 1024
    # The request line and every header together; past it a 431 (docs/api.md, Limits).
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    # Signup and login are where credential stuffing happens: they get a tenth of the limit.
    auth_rate_divisor: int = 10
