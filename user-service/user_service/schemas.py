"""user-service wire formats: what clients send and what they get back."""

from __future__ import annotations

from pydantic import BaseModel

from photogram_common.schemas import (  # noqa: F401  (re-exported for the routes)
    AuthRead,
    FollowRead,
    LoginCreate,
    SignupCreate,
    UserMeRead,
    UserRead,
    UsersPage,
)


class FollowerIdsPage(BaseModel):
    """Internal: a page of follower IDs for the fan-out."""

    user_ids: list[str]
    next_after: str | None


class FolloweeRead(BaseModel):
    """Internal: an account the caller follows, and whether its posts are pulled."""

    user_id: str
    followers_count: int
    pulled: bool


class FolloweesRead(BaseModel):
    items: list[FolloweeRead]


class DeliveryRead(BaseModel):
    """Internal: whether an author is pulled at read time (else pushed to followers)."""

    user_id: str
    pulled: bool
