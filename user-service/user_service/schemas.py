"""user-service wire formats: what clients send and what they get back."""

from __future__ import annotations

from photogram_common.contracts.internal import (  # noqa: F401  (re-exported for the routes)
    DeliveryRead,
    FolloweeRead,
    FolloweesRead,
    FollowerIdsPage,
)
from photogram_common.schemas import (  # noqa: F401  (re-exported for the routes)
    AuthRead,
    FollowRead,
    LoginCreate,
    SignupCreate,
    UserMeRead,
    UserRead,
    UsersPage,
)

