"""post-service wire formats."""

from __future__ import annotations

from typing import Annotated, Self

from photogram_contracts.internal import (
    HoldersLookup,
    HoldersRead,
    IdempotencyKey,
    IdempotencyKeyRead,
    IdempotencyKeySearch,
    PostIdsRead,
    PostsBatchCreate,
    RebuildCreate,
)
from photogram_contracts.schemas import Caption, Location, PostRead, PostsPage
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "HoldersLookup",
    "HoldersRead",
    "IdempotencyKeyRead",
    "IdempotencyKeySearch",
    "PostCreate",
    "PostIdsRead",
    "PostRead",
    "PostsBatchCreate",
    "PostsPage",
    "RebuildCreate",
]

# A claim on 10 media, with their variants' URLs, is about 7 KB.
MAX_CLAIM_CHARS = 32_768
RequestHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caption: Caption | None = None
    location: Location | None = None
    # media-service's signed claim on the upload's media (photogram_common.media_claims):
    # the post is made of the media it names, checked here without calling media-service.
    claim: str = Field(min_length=1, max_length=MAX_CLAIM_CHARS)
    # Both or neither: the key, and the hash of the upload the post is made from.
    idempotency_key: IdempotencyKey | None = None
    request_hash: RequestHash | None = None

    @model_validator(mode="after")
    def _key_with_its_hash(self) -> Self:
        if (self.idempotency_key is None) != (self.request_hash is None):
            raise ValueError("idempotency_key and request_hash go together")
        return self
