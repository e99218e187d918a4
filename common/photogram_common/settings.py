"""Settings shared by every service, read from PHOTOGRAM_* variables."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Well-known placeholders that must never sign a real token.
_DEFAULT_SECRETS = {"", "changeme", "change-me", "secret", "photogram", "development-secret"}
MIN_SECRET_BYTES = 32
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_MAX_LOOP_LAG_MS = 30
DEFAULT_ADMISSION_WAIT_MS = 20
DEFAULT_ADMISSION_OVERLOAD_WAIT_MS = 5
DEFAULT_ADMISSION_OVERLOAD_AFTER_MS = 100


@dataclass(frozen=True)
class LoadBounds:
    """One process's load-shedding bounds (photogram_common.shedding); 0 means none.

    `paths` are hot routes with an in-flight bound of their own (exact paths)."""

    in_flight: int = 0
    loop_lag_ms: int = 0
    wait_ms: int = 0
    newest_first: bool = False
    overload_wait_ms: int = 0
    overload_after_ms: int = 0
    paths: Mapping[str, int] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.in_flight or self.loop_lag_ms or any(self.paths.values()))


class Mode(StrEnum):
    EMBEDDED = "embedded"
    DISTRIBUTED = "distributed"


class PlatformSettings(BaseSettings):
    """What all services share: mode, backends, secrets, feed policy and limits."""

    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_", extra="ignore")

    mode: Mode = Mode.EMBEDDED
    data_dir: Path = Path("./.data")
    port: int = 8000
    worker_id: int | None = Field(default=None, ge=0, le=1023)

    redis_url: str | None = None
    redis_cluster: bool = False
    kafka_bootstrap: str | None = None
    kafka_partitions: int = Field(default=8, ge=1)
    kafka_prefix: str = ""
    # Off where the topics are made by an operator (Kubernetes: Strimzi's KafkaTopic, with
    # their replicas): a missing topic then stops the start instead of being made here.
    kafka_create_topics: bool = True

    jwt_secret: str = ""
    internal_secret: str = ""
    access_token_ttl_seconds: int = Field(default=900, ge=1)
    # A refresh token's lifetime; each refresh issues a new one for as long again.
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=1)

    user_service_url: str = "http://user-service"
    post_service_url: str = "http://post-service"
    media_service_url: str = "http://media-service"
    feed_service_url: str = "http://feed-service"
    fanout_worker_url: str = "http://fanout-worker"
    notification_service_url: str = "http://notification-service"
    service_timeout_seconds: float = Field(default=5.0, gt=0)
    # Requests in flight per process before it answers a fast 503 (0: no bound). Unset: 64
    # in the distributed mode; none in the embedded one, where one process serves a machine.
    max_in_flight: int | None = Field(default=None, ge=0)
    # How late the event loop may run before requests are refused with a fast 503 (0: no
    # bound): the queue a saturated process holds before it begins a request. Unset: 30 ms
    # in the distributed mode; none in the embedded one.
    max_loop_lag_ms: int | None = Field(default=None, ge=0)
    # How long a request past an in-flight bound waits for a slot before its 503: a tight
    # bound then rides out a burst. Unset: 20 ms in the distributed mode; none embedded.
    admission_wait_ms: int | None = Field(default=None, ge=0)
    # Which waiting request a freed slot goes to: the newest (a full line then refuses its
    # oldest) or the oldest (a full line refuses the newcomer). docs/decisions.md.
    admission_newest_first: bool = False
    # Once the line of waiting requests has not been empty for this long (a standing line,
    # past the knee, not a burst), a newcomer waits at most admission_overload_wait_ms
    # instead: CoDel's rule (docs/decisions.md). 0: the full wait always.
    admission_overload_after_ms: int = Field(default=DEFAULT_ADMISSION_OVERLOAD_AFTER_MS, ge=0)
    admission_overload_wait_ms: int = Field(default=DEFAULT_ADMISSION_OVERLOAD_WAIT_MS, ge=0)

    celebrity_threshold: int = Field(default=10_000, ge=1)
    active_days: int = Field(default=7, ge=1)
    timeline_cap: int = Field(default=400, ge=20)  # docs/decisions.md, "Timeline cap"
    rate_limit_per_minute: int = Field(default=600, ge=0)
    max_upload_mb: int = Field(default=20, ge=1)
    max_image_pixels: int = Field(default=50_000_000, ge=1)

    @model_validator(mode="after")
    def _secrets_fit_the_mode(self) -> Self:
        for name in ("jwt_secret", "internal_secret"):
            value = getattr(self, name)
            if self.mode is Mode.EMBEDDED and not value:
                # The embedded mode runs on a bare machine: it makes a secret per data
                # directory so tokens survive a restart (see embedded_secret).
                continue
            if value.lower() in _DEFAULT_SECRETS or len(value.encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"PHOTOGRAM_{name.upper()} must be set to a random value of at least "
                    f"{MIN_SECRET_BYTES} bytes outside the embedded mode"
                )
        return self

    def service_url(self, name: str) -> str:
        """The base URL of a peer by its name, e.g. "user-service"."""
        url: str = getattr(self, f"{name.replace('-', '_')}_url")
        return url

    @property
    def embedded(self) -> bool:
        return self.mode is Mode.EMBEDDED

    @property
    def in_flight_bound(self) -> int:
        """The in-flight bound per process (0: none)."""
        if self.max_in_flight is not None:
            return self.max_in_flight
        return 0 if self.embedded else DEFAULT_MAX_IN_FLIGHT

    @property
    def loop_lag_bound_ms(self) -> int:
        """The loop-lag bound per process in milliseconds (0: none)."""
        if self.max_loop_lag_ms is not None:
            return self.max_loop_lag_ms
        return 0 if self.embedded else DEFAULT_MAX_LOOP_LAG_MS

    @property
    def load_bounds(self) -> LoadBounds:
        """This process's bounds, as `create_service_app` takes them."""
        wait = self.admission_wait_ms
        return LoadBounds(
            in_flight=self.in_flight_bound,
            loop_lag_ms=self.loop_lag_bound_ms,
            wait_ms=(0 if self.embedded else DEFAULT_ADMISSION_WAIT_MS) if wait is None else wait,
            newest_first=self.admission_newest_first,
            overload_wait_ms=self.admission_overload_wait_ms,
            overload_after_ms=self.admission_overload_after_ms,
        )


def embedded_secret(data_dir: Path, name: str) -> str:
    """Return a random secret kept in the data directory, made on first use."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f".{name}"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def resolve_secrets(settings: PlatformSettings) -> PlatformSettings:
    """Fill empty secrets in the embedded mode from the data directory."""
    if not settings.embedded:
        return settings
    updates = {
        name: getattr(settings, name) or embedded_secret(settings.data_dir, name)
        for name in ("jwt_secret", "internal_secret")
    }
    return settings.model_copy(update=updates)
