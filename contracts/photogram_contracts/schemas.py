"""The public resources of the API, shared by the gateway and the services that make them."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    field_validator,
)

from photogram_contracts import examples as ex
from photogram_contracts.examples import examples

USERNAME_PATTERN = re.compile(r"^[a-z0-9._]{3,30}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_CAPTION_CHARS = 2200
MAX_LOCATION_CHARS = 100

# Text people read and the databases store: no control characters (C0, DEL, C1), which
# PostgreSQL refuses (NUL) or terminals obey, and no lone surrogates, which a JSON escape
# can carry but UTF-8 cannot encode. A caption may break lines and indent, as Instagram's do.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_EXCEPT_NEWLINE_AND_TAB = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def single_line_text(value: str) -> str:
    """Refuse control characters and lone surrogates (a validator for names and the like)."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or unpaired surrogates")
    return value


def multi_line_text(value: str) -> str:
    """As single_line_text, but newlines and tabs are allowed; CRLF and CR become LF.

    An HTML form sends a textarea's line breaks as CRLF.
    """
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL_EXCEPT_NEWLINE_AND_TAB.search(value):
        raise ValueError(
            "must not contain control characters other than newline and tab, or unpaired surrogates"
        )
    return value


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100), AfterValidator(single_line_text)
]
Caption = Annotated[str, Field(max_length=MAX_CAPTION_CHARS), AfterValidator(multi_line_text)]
Location = Annotated[str, Field(max_length=MAX_LOCATION_CHARS), AfterValidator(single_line_text)]
MAX_BIO_CHARS = 150
# A bio may break lines, as Instagram's do.
Bio = Annotated[str, Field(max_length=MAX_BIO_CHARS), AfterValidator(multi_line_text)]


class SignupCreate(BaseModel):
    model_config = examples(
        {
            "username": "ana",
            "email": "ana@example.com",
            "password": "correct horse battery",
            "first_name": "Ana",
            "last_name": "Lima",
            "location": "Lisbon",
        },
        extra="forbid",
    )

    username: str = Field(max_length=64)
    email: str = Field(max_length=254)
    # Opaque: only hashed, so any character may be in it (control characters too).
    password: str = Field(min_length=8, max_length=128)
    first_name: Name | None = None
    last_name: Name | None = None
    location: Name | None = None

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        value = value.lower()
        if not USERNAME_PATTERN.fullmatch(value):
            raise ValueError("3 to 30 characters of a-z, 0-9, '.' and '_'")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = single_line_text(value.strip())
        if not EMAIL_PATTERN.fullmatch(value):
            raise ValueError("not an email address")
        return value


class LoginCreate(BaseModel):
    model_config = examples({"login": "ana", "password": "correct horse battery"}, extra="forbid")

    login: Annotated[str, AfterValidator(single_line_text)] = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=128)


class VariantRead(BaseModel):
    model_config = examples(ex.variant("small", 320, 427))

    url: str
    width: int
    height: int


class AvatarRead(BaseModel):
    """A user's avatar: centre-cropped squares, 150 and 320 pixels."""

    model_config = examples(
        {
            "thumbnail": {
                "url": "/api/avatars/7258416240394240/thumbnail.jpg",
                "width": 150,
                "height": 150,
            },
            "small": {
                "url": "/api/avatars/7258416240394240/small.jpg",
                "width": 320,
                "height": 320,
            },
        }
    )

    thumbnail: VariantRead
    small: VariantRead


class UserRead(BaseModel):
    model_config = examples(ex.USER)

    user_id: str
    username: str
    first_name: str | None
    last_name: str | None
    location: str | None
    created_at: str
    followers_count: int
    following_count: int
    posts_count: int
    bio: str = ""
    avatar: AvatarRead | None = None


class ViewerRead(BaseModel):
    """How the caller stands with the user shown."""

    model_config = examples({"following": True, "followed_by": False})

    following: bool
    followed_by: bool


class ProfileRead(UserRead):
    """A user as another authenticated user sees them (GET /api/users/{id}): with the
    caller's relationship; the caller's own profile has none."""

    model_config = examples({**ex.USER, "viewer": {"following": True, "followed_by": False}})

    viewer: ViewerRead | None = None


class UserMeRead(UserRead):
    model_config = examples(ex.USER_ME)

    email: str


class ProfileUpdate(BaseModel):
    """PATCH /api/users/me: the fields given are set (a name set to null is cleared)."""

    model_config = examples(
        {"location": "Porto", "bio": "Sunsets and tiles.\nFilm when I can."}, extra="forbid"
    )

    first_name: Name | None = None
    last_name: Name | None = None
    location: Name | None = None
    bio: Bio | None = None


class AuthRead(BaseModel):
    model_config = examples(
        {
            "user": ex.USER_ME,
            "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3MjU4NDE2MDAxMTI2NDAwIn0.c2lnbmF0dXJl",
            "token_type": "bearer",
            "expires_in": 900,
            "refresh_token": "q3V0bS1hbmEtcmVmcmVzaC10b2tlbi1leGFtcGxlLTQz",
            "refresh_expires_in": 2592000,
        }
    )

    user: UserMeRead
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth token type, not a secret)
    expires_in: int
    # Opaque and single-use: POST /api/auth/refresh trades it for a new pair.
    refresh_token: str
    refresh_expires_in: int


class AccountDelete(BaseModel):
    """DELETE /api/users/me: the account's password, asked again."""

    model_config = examples({"password": "correct horse battery"}, extra="forbid")

    password: str = Field(min_length=1, max_length=128)


class RefreshCreate(BaseModel):
    """A session's current refresh token (for /auth/refresh and /auth/logout)."""

    model_config = examples({"refresh_token": "q3V0bS1hbmEtcmVmcmVzaC10b2tlbi1leGFtcGxlLTQz"})

    refresh_token: str = Field(min_length=1, max_length=200)


class FollowRead(BaseModel):
    model_config = examples({"following": True})

    following: bool


class UsersPage(BaseModel):
    model_config = examples({"items": [ex.USER], "next_cursor": "MTcyNTg0MTYwMDExMjY0MDA"})

    items: list[UserRead]
    next_cursor: str | None


class MediaRead(BaseModel):
    model_config = examples(ex.MEDIA)

    media_id: str
    user_id: str
    content_type: str
    width: int
    height: int
    blurhash: str
    variants: dict[str, VariantRead]


class AuthorRead(BaseModel):
    model_config = examples(ex.AUTHOR)

    user_id: str
    username: str


class PostViewerRead(BaseModel):
    """How the caller stands with the post shown."""

    model_config = examples({"liked": False})

    liked: bool


class PostRead(BaseModel):
    model_config = examples(ex.POST)

    post_id: str
    user_id: str
    author: AuthorRead
    caption: str | None
    location: str | None
    created_at: str
    media: list[MediaRead]
    likes_count: int = 0
    comments_count: int = 0
    # For an authenticated caller (every public route has one).
    viewer: PostViewerRead | None = None


# The fields of a post that change after it is made: kept out of the post's cached body
# and joined in at read time (feed_service.page_read).
ENGAGEMENT_FIELDS = {"likes_count", "comments_count", "viewer"}


class LikeRead(BaseModel):
    model_config = examples({"liked": True, "likes_count": 3})

    liked: bool
    likes_count: int


MAX_COMMENT_CHARS = 2200


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


CommentText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_COMMENT_CHARS),
    AfterValidator(multi_line_text),
    AfterValidator(_not_blank),
]


class CommentCreate(BaseModel):
    model_config = examples({"text": "What a sky!"}, extra="forbid")

    text: CommentText


class CommentRead(BaseModel):
    model_config = examples(ex.COMMENT)

    comment_id: str
    post_id: str
    author: AuthorRead
    text: str
    created_at: str


class CommentsPage(BaseModel):
    model_config = examples({"items": [ex.COMMENT], "next_cursor": None})

    items: list[CommentRead]
    next_cursor: str | None


class PostsPage(BaseModel):
    model_config = examples({"items": [ex.POST], "next_cursor": "MTcyNTg0MTYxMjAxMzU2ODA"})

    items: list[PostRead]
    next_cursor: str | None


class NotificationRead(BaseModel):
    model_config = examples(ex.NOTIFICATION)

    notification_id: str
    type: Literal["follow", "like", "comment"]
    actor: AuthorRead
    # Set for a like and a comment; a comment's also names the comment.
    post_id: str | None = None
    comment_id: str | None = None
    created_at: str
    read: bool


class NotificationsPage(BaseModel):
    model_config = examples({"items": [ex.NOTIFICATION], "next_cursor": None})

    items: list[NotificationRead]
    next_cursor: str | None


class UnreadCountRead(BaseModel):
    model_config = examples({"count": 2})

    count: int


class MarkReadCreate(BaseModel):
    """Mark this notification and every older one read."""

    model_config = examples({"up_to": "7258416300023808"}, extra="forbid")

    up_to: str = Field(min_length=1, max_length=20, pattern=r"^[0-9]+$")
