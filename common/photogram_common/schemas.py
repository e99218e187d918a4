"""The public resources of the API, shared by the gateway and the services that make them."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

USERNAME_PATTERN = re.compile(r"^[a-z0-9._]{3,30}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


class SignupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64)
    email: str = Field(max_length=254)
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
        value = value.strip()
        if not EMAIL_PATTERN.fullmatch(value):
            raise ValueError("not an email address")
        return value


class LoginCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=128)


class UserRead(BaseModel):
    user_id: str
    username: str
    first_name: str | None
    last_name: str | None
    location: str | None
    created_at: str
    followers_count: int
    following_count: int
    posts_count: int


class UserMeRead(UserRead):
    email: str


class AuthRead(BaseModel):
    user: UserMeRead
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth token type, not a secret)
    expires_in: int


class FollowRead(BaseModel):
    following: bool


class UsersPage(BaseModel):
    items: list[UserRead]
    next_cursor: str | None


class VariantRead(BaseModel):
    url: str
    width: int
    height: int


class MediaRead(BaseModel):
    media_id: str
    user_id: str
    content_type: str
    width: int
    height: int
    blurhash: str
    variants: dict[str, VariantRead]


class AuthorRead(BaseModel):
    user_id: str
    username: str


class PostRead(BaseModel):
    post_id: str
    user_id: str
    author: AuthorRead
    caption: str | None
    location: str | None
    created_at: str
    media: list[MediaRead]


class PostsPage(BaseModel):
    items: list[PostRead]
    next_cursor: str | None
