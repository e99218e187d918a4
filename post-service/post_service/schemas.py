"""post-service wire formats."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from photogram_common.schemas import Caption, Location, PostRead, PostsPage

__all__ = [
    "IdempotencyKeyRead",
    "IdempotencyKeySearch",
    "PostCreate",
    "PostIdsRead",
    "PostRead",
    "PostsBatchCreate",
    "PostsPage",
    "RebuildCreate",
]

MAX_MEDIA = 10
# The client's Idempotency-Key (checked at the gateway: 1 to 255 visible ASCII characters).
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[!-~]+$")]
RequestHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caption: Caption | None = None
    location: Location | None = None
    media_ids: list[str] = Field(min_length=1, max_length=MAX_MEDIA)
    # Both or neither: the key, and the hash of the upload the post is made from.
    idempotency_key: IdempotencyKey | None = None
    request_hash: RequestHash | None = None

    @model_validator(mode="after")
    def _key_with_its_hash(self) -> Self:
        if (self.idempotency_key is None) != (self.request_hash is None):
            raise ValueError("idempotency_key and request_hash go together")
        return self


class IdempotencyKeySearch(BaseModel):
    key: IdempotencyKey


class IdempotencyKeyRead(BaseModel):
    """An earlier use of the caller's key: what was asked, and the post it answered."""

    request_hash: str
    post: PostRead


class PostsBatchCreate(BaseModel):
    """Internal: hydrate these posts (the missing and deleted are left out)."""

    post_ids: list[str] = Field(max_length=500)


class RebuildCreate(BaseModel):
    """Internal: the newest posts of these authors, for rebuilding a home timeline."""

    author_ids: list[str] = Field(max_length=20_000)
    limit: int = Field(ge=1, le=2000)
    # Only posts older than this one (a feed page read from the database).
    before: str | None = Field(default=None, max_length=20)


class PostIdsRead(BaseModel):
    post_ids: list[str]
