"""post-service wire formats."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from photogram_common.schemas import Caption, Location, PostRead, PostsPage

__all__ = [
    "PostCreate",
    "PostIdsRead",
    "PostRead",
    "PostsBatchCreate",
    "PostsPage",
    "RebuildCreate",
]

MAX_MEDIA = 10


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caption: Caption | None = None
    location: Location | None = None
    media_ids: list[str] = Field(min_length=1, max_length=MAX_MEDIA)


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
