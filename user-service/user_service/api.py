"""user-service HTTP routes: parse, call one use case, return its result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from photogram_contracts.internal import AvatarUpdate, UserIdsLookup

from photogram_common.bus.consumer import EventConsumer
from photogram_common.callers import Caller, CurrentUser
from photogram_common.db import Database
from photogram_common.ids import parse_id
from photogram_common.outbox import OutboxRelay
from photogram_common.problems import Problem
from photogram_common.roots import ServiceRoot, root_of
from user_service.schemas import (
    AccountDelete,
    AuthRead,
    DeliveryRead,
    FolloweesRead,
    FollowerIdsPage,
    FollowRead,
    LoginCreate,
    ProfileRead,
    ProfileUpdate,
    RefreshCreate,
    SignupCreate,
    UserMeRead,
    UsersPage,
)
from user_service.service import UserService

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=100)]


@dataclass(frozen=True)
class UserServiceRoot(ServiceRoot):
    """user-service's process, as its app.py composes it."""

    users: UserService
    database: Database
    relay: OutboxRelay
    post_counter: EventConsumer
    active_days: int


def root(request: Request) -> UserServiceRoot:
    return root_of(request.app, UserServiceRoot)


async def get_service(request: Request) -> UserService:
    return root(request).users


Users = Annotated[UserService, Depends(get_service)]


async def user_id_path(user_id: str) -> int:
    parsed = parse_id(user_id)
    if parsed is None:
        raise Problem(404, "No such user.", title="Not found")
    return parsed


UserIdPath = Annotated[int, Depends(user_id_path)]


@router.post("/auth/signup", status_code=201)
async def signup(body: SignupCreate, users: Users, _: Caller) -> AuthRead:
    return await users.signup(body)


@router.post("/auth/login")
async def login(body: LoginCreate, users: Users, _: Caller) -> AuthRead:
    return await users.login(body)


@router.post("/auth/refresh")
async def refresh(body: RefreshCreate, users: Users, _: Caller) -> AuthRead:
    return await users.refresh(body.refresh_token)


@router.post("/auth/logout", status_code=204)
async def logout(body: RefreshCreate, users: Users, _: Caller) -> Response:
    await users.logout(body.refresh_token)
    return Response(status_code=204)


@router.get("/users/me")
async def me(users: Users, caller: CurrentUser) -> UserMeRead:
    return await users.me(caller.user_id)


@router.delete("/users/me", status_code=204)
async def delete_me(body: AccountDelete, users: Users, caller: CurrentUser) -> Response:
    await users.delete_account(caller.user_id, body.password)
    return Response(status_code=204)


@router.put("/internal/users/me/avatar")
async def set_avatar(body: AvatarUpdate, users: Users, caller: CurrentUser) -> UserMeRead:
    return await users.set_avatar(caller.user_id, body.avatar)


@router.post("/users/me/seen", status_code=204)
async def seen(users: Users, caller: CurrentUser) -> Response:
    await users.seen(caller.user_id)
    return Response(status_code=204)


@router.patch("/users/me")
async def update_me(body: ProfileUpdate, users: Users, caller: CurrentUser) -> UserMeRead:
    return await users.update_me(caller.user_id, body)


def _profile(profile: ProfileRead) -> JSONResponse:
    """A profile without `viewer` when there is none (the caller's own, or a service's)."""
    return JSONResponse(profile.model_dump(exclude=None if profile.viewer else {"viewer"}))


@router.get("/users/search")
async def search(
    users: Users,
    _: Caller,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Limit = 20,
    cursor: str | None = None,
) -> UsersPage:
    return await users.search(q, cursor=cursor, limit=limit)


@router.get("/users/by-username/{username}", responses={200: {"model": ProfileRead}})
async def by_username(username: str, users: Users, caller: Caller) -> JSONResponse:
    return _profile(await users.get_by_username(username, viewer_id=caller.user_id))


@router.get("/users/{user_id}", responses={200: {"model": ProfileRead}})
async def get_user(user_id: UserIdPath, users: Users, caller: Caller) -> JSONResponse:
    return _profile(await users.get(user_id, viewer_id=caller.user_id))


@router.post("/users/{user_id}/follow")
async def follow(user_id: UserIdPath, users: Users, caller: CurrentUser) -> FollowRead:
    await users.follow(follower_id=caller.user_id, followee_id=user_id)
    return FollowRead(following=True)


@router.delete("/users/{user_id}/follow", status_code=204)
async def unfollow(user_id: UserIdPath, users: Users, caller: CurrentUser) -> Response:
    await users.unfollow(follower_id=caller.user_id, followee_id=user_id)
    return Response(status_code=204)


@router.get("/users/{user_id}/followers")
async def followers(
    user_id: UserIdPath, users: Users, _: Caller, limit: Limit = 20, cursor: str | None = None
) -> UsersPage:
    return await users.follow_page(
        user_id=user_id, direction="followers", cursor=cursor, limit=limit
    )


@router.get("/users/{user_id}/following")
async def following(
    user_id: UserIdPath, users: Users, _: Caller, limit: Limit = 20, cursor: str | None = None
) -> UsersPage:
    return await users.follow_page(
        user_id=user_id, direction="following", cursor=cursor, limit=limit
    )


@router.get("/internal/users/{user_id}/active-followers")
async def active_followers(
    request: Request,
    user_id: UserIdPath,
    users: Users,
    _: Caller,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    active_days: Annotated[int | None, Query(ge=0, description="0: every follower")] = None,
) -> FollowerIdsPage:
    days = root(request).active_days if active_days is None else active_days
    return await users.active_followers(user_id=user_id, active_days=days, after=after, limit=limit)


@router.get("/internal/users/{user_id}/followees")
async def followees(user_id: UserIdPath, users: Users, _: Caller) -> FolloweesRead:
    return await users.followees(user_id)


@router.get("/internal/users/{user_id}/delivery")
async def delivery(user_id: UserIdPath, users: Users, _: Caller) -> DeliveryRead:
    return await users.delivery(user_id)


@router.post("/internal/users/batch")
async def batch(body: UserIdsLookup, users: Users, _: Caller) -> UsersPage:
    """These users, in the order asked (the unknown left out)."""
    ids = [u for u in (parse_id(i) for i in body.user_ids) if u is not None]
    return UsersPage(items=await users.batch(ids), next_cursor=None)
