"""media-service settings (PHOTOGRAM_MEDIA_* and the S3 connection, PHOTOGRAM_S3_*)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class MediaServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_MEDIA_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8103
    database_url: str | None = None
    # Where variant URLs point when a CDN or public bucket serves them; else the gateway.
    public_base_url: str | None = None
    image_workers: int = Field(default=0, ge=0)  # 0: one per core
    presigned_url_seconds: int = Field(default=3600, ge=60)
    # The consumer group that deletes a deleted post's media (post.deleted).
    group: str = "media-service"
    # How long the claim media-service signs on an upload's media can make their post;
    # longer than any upload takes between its media and its post.
    claim_ttl_seconds: float = Field(default=600, ge=1)
    # Media no post uses are deleted this long after their upload: past their claim's life
    # (and the upload's deadline), so no post can still be made of them.
    orphan_grace_seconds: float = Field(default=3600, ge=0)
    sweep_every_seconds: float = Field(default=300, gt=0)

    @model_validator(mode="after")
    def _grace_outlasts_the_claim(self) -> Self:
        if self.orphan_grace_seconds <= self.claim_ttl_seconds:
            raise ValueError("orphan_grace_seconds must be longer than claim_ttl_seconds")
        return self


class S3Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOGRAM_S3_", extra="ignore")

    endpoint_url: str | None = None
    bucket: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
