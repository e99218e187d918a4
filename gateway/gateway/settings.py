"""gateway settings (PHOTOGRAM_GATEWAY_*); its port is PHOTOGRAM_PORT, the origins it lets
browsers call it from PHOTOGRAM_CORS_ORIGINS."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.addresses import parse_networks
from photogram_common.settings import PlatformSettings

DEFAULT_FEED_MAX_IN_FLIGHT = 6
# An origin as a browser sends it: scheme, host and an optional port, no path.
_ORIGIN = re.compile(r"https?://[^/\s?#@]+")


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    max_json_body_bytes: int = 1024 * 1024
    # The request line and every header together; past it a 431 (docs/api.md, Limits).
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    # Signup and login are where credential stuffing happens: they get a tenth of the limit.
    auth_rate_divisor: int = 10
    # Each request's deadline, which every call to a service gets what is left of
    # (docs/decisions.md, "Deadlines"); an upload's covers receiving its body too.
    request_deadline_seconds: float = Field(default=10.0, gt=0)
    upload_deadline_seconds: float = Field(default=120.0, gt=0)
    # Proxies whose X-Forwarded-For is believed: comma-separated addresses or CIDR ranges.
    # None by default: the TCP peer is the client (docs/operations.md).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Origins whose pages may call the API from a browser (CORS): comma-separated, such as
    # `http://localhost:5173`, or `*` for any. None by default: the web client is served by
    # the gateway, same-origin (docs/decisions.md, "CORS").
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="PHOTOGRAM_CORS_ORIGINS"
    )

    # Feed reads in flight per gateway process, a bound of their own beside the general one
    # (PHOTOGRAM_MAX_IN_FLIGHT) so that slow requests (uploads) never take the feed's slots.
    # Tight on purpose: past the knee it caps what a served read waits (Little's law: 6 at
    # ~800 reads/s is 7.5 ms), the admission wait (PHOTOGRAM_ADMISSION_WAIT_MS) absorbing
    # bursts (docs/decisions.md, "Load shedding"). Unset: 6 where the general bound is on.
    feed_max_in_flight: int | None = Field(default=None, ge=0)

    def feed_bound(self, platform: PlatformSettings) -> int:
        if self.feed_max_in_flight is not None:
            return self.feed_max_in_flight
        return DEFAULT_FEED_MAX_IN_FLIGHT if platform.in_flight_bound else 0

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # a malformed entry stops the gateway from starting
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = [origin.rstrip("/").lower() for origin in value]
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://example.com")
        return origins
