"""The bodies of the internal routes (`/internal/...`): what a service's one peer adapter
sends and parses, and what the owning service's route validates and answers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from photogram_contracts.schemas import AvatarRead, MediaRead, PostRead

# user-service


class FollowerIdsPage(BaseModel):
    """A page of follower IDs for the fan-out."""

    user_ids: list[str]
    next_after: str | None


class FolloweeRead(BaseModel):
    """An account the caller follows, and whether its posts are pulled."""

    user_id: str
    followers_count: int
    pulled: bool


class FolloweesRead(BaseModel):
    items: list[FolloweeRead]


class DeliveryRead(BaseModel):
    """Whether an author is pulled at read time (else pushed to followers)."""

    user_id: str
    pulled: bool


# post-service


class PostsBatchCreate(BaseModel):
    """Hydrate these posts (the missing and deleted are left out)."""

    post_ids: list[str] = Field(max_length=500)


class RebuildCreate(BaseModel):
    """The newest posts of these authors, for rebuilding a home timeline."""

    author_ids: list[str] = Field(max_length=20_000)
    limit: int = Field(ge=1, le=2000)
    # Only posts older than this one (a feed page read from the database).
    before: str | None = Field(default=None, max_length=20)


class NewestPageLookup(BaseModel):
    """A page of the pull query: the newest posts of these authors with their counts and
    whether `viewer_id` likes each (the feed's read while Redis cannot serve it)."""

    author_ids: list[str] = Field(max_length=20_000)
    limit: int = Field(ge=1, le=100)
    before: str | None = Field(default=None, max_length=20)
    viewer_id: str = Field(max_length=20)


class PostIdsRead(BaseModel):
    post_ids: list[str]


class HoldersLookup(BaseModel):
    """Which live posts hold these media (the media sweep's question)."""

    media_ids: list[str] = Field(max_length=500)


class HoldersRead(BaseModel):
    """Media ID to the live post that holds it; media no live post holds are left out."""

    holders: dict[str, str]


# The client's Idempotency-Key (checked at the gateway: 1 to 255 visible ASCII characters).
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[!-~]+$")]


class IdempotencyKeySearch(BaseModel):
    key: IdempotencyKey


class IdempotencyKeyRead(BaseModel):
    """An earlier use of the caller's key: what was asked, and the post it answered."""

    request_hash: str
    post: PostRead


# media-service


class UploadRead(BaseModel):
    media: list[MediaRead]
    caption: str | None
    location: str | None
    # What the upload asked for, as a hash (ParsedUpload.digest): an idempotent retry's test.
    request_hash: str
    # media-service's signed, short-lived claim on these media for the caller, which
    # post-service checks without calling back (photogram_common.media_claims).
    claim: str


class DigestRead(BaseModel):
    request_hash: str


# post-service: likes and comments


class CountsLookup(BaseModel):
    """The counts of these posts, and whether `viewer_id` likes each (for the feed)."""

    post_ids: list[str] = Field(max_length=500)
    viewer_id: str = Field(max_length=20)


class CountsRead(BaseModel):
    post_id: str
    likes_count: int
    comments_count: int
    # Grows by one per change of the post's counts (photogram_contracts.events).
    counts_version: int
    liked: bool


class CountsPage(BaseModel):
    items: list[CountsRead]


class LikedRead(BaseModel):
    """A user's liked posts, newest post first; `complete` when none was left out."""

    post_ids: list[str]
    complete: bool


class LikerIdsPage(BaseModel):
    """A post's likers, newest like first."""

    user_ids: list[str]
    next_cursor: str | None


# user-service


class AvatarUpdate(BaseModel):
    """The caller's avatar as media-service made it, or None for none."""

    avatar: AvatarRead | None


class UserIdsLookup(BaseModel):
    user_ids: list[str] = Field(max_length=100)


# notification-service


class NotificationRecord(BaseModel):
    """A notification as its owner keeps it: the gateway adds the actor's username."""

    notification_id: str
    type: str
    actor_id: str
    post_id: str | None
    comment_id: str | None
    created_at: str
    read: bool


class NotificationRecordsPage(BaseModel):
    items: list[NotificationRecord]
    next_cursor: str | None
