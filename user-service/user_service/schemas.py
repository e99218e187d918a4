"""user-service wire formats: what clients send and what they get back."""

from __future__ import annotations

from photogram_contracts.internal import (
    DeliveryRead,
    FolloweeRead,
    FolloweesRead,
    FollowerIdsPage,
)
from photogram_contracts.schemas import (
    AccountDelete,
    AuthRead,
    AvatarRead,
    FollowRead,
    LoginCreate,
    ProfileRead,
    ProfileUpdate,
    RefreshCreate,
    SignupCreate,
    UserMeRead,
    UserRead,
    UsersPage,
    ViewerRead,
)

__all__ = [
    "AccountDelete",
    "AuthRead",
    "AvatarRead",
    "DeliveryRead",
    "FollowRead",
    "FolloweeRead",
    "FolloweesRead",
    "FollowerIdsPage",
    "LoginCreate",
    "ProfileRead",
    "ProfileUpdate",
    "RefreshCreate",
    "SignupCreate",
    "UserMeRead",
    "UserRead",
    "UsersPage",
    "ViewerRead",
]
