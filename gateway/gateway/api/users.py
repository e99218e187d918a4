"""Public routes for auth, users and follows: verify, then call user-service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from photogram_contracts.schemas import (
    AccountDelete,
    AuthRead,
    FollowRead,
    LoginCreate,
    ProfileRead,
    ProfileUpdate,
    RefreshCreate,
    SignupCreate,
    UserMeRead,
    UsersPage,
    single_line_text,
)

from gateway.api import (
    CurrentUser,
    PeerClients,
    UserIdPath,
    UsernamePath,
    credential_endpoint,
)
from gateway.api.problems import problems
from gateway.service import relay_page
from photogram_common.problems import Problem

router = APIRouter(prefix="/api")
Limit = Annotated[int, Query(ge=1, le=100)]
_AUTH = problems(401, 429, 503)


@router.post(
    "/auth/signup",
    summary="Sign up",
    status_code=201,
    response_model=AuthRead,
    responses=problems(400, 409, 413, 422, 429, 503),
    dependencies=[Depends(credential_endpoint)],
)
async def signup(body: SignupCreate, peers: PeerClients) -> JSONResponse:
    """Create an account and start a session: the user (with email), an access token and a
    refresh token.

    The username is lower-cased, then 3 to 30 of `a-z 0-9 . _`; usernames and emails are unique
    ignoring case (409 when taken); the password is 8 to 128 characters."""
    data = await peers.users.call("POST", "/auth/signup", json=body.model_dump())
    return JSONResponse(data, status_code=201)


@router.post(
    "/auth/login",
    summary="Log in",
    response_model=AuthRead,
    responses=problems(400, 401, 413, 422, 429, 503),
    dependencies=[Depends(credential_endpoint)],
)
async def login(body: LoginCreate, peers: PeerClients) -> Any:
    """Start a session with the username or the email (any case) and the password.

    An unknown user and a wrong password are the same 401, answered in the same time."""
    return await peers.users.call("POST", "/auth/login", json=body.model_dump())


@router.post(
    "/auth/refresh",
    summary="Refresh a session",
    response_model=AuthRead,
    responses=problems(400, 401, 413, 422, 429, 503),
    dependencies=[Depends(credential_endpoint)],
)
async def refresh(body: RefreshCreate, peers: PeerClients) -> Any:
    """Trade the session's refresh token for a new access token and refresh token.

    The old refresh token is single-use: presented again, it ends the whole session."""
    return await peers.users.call("POST", "/auth/refresh", json=body.model_dump())


@router.post(
    "/auth/logout",
    summary="Log out",
    status_code=204,
    response_class=Response,
    responses=problems(400, 401, 413, 422, 429, 503),
    dependencies=[Depends(credential_endpoint)],
)
async def logout(body: RefreshCreate, peers: PeerClients) -> Response:
    """End the session of this refresh token: it and the session's access tokens stop
    working at once."""
    await peers.users.call("POST", "/auth/logout", json=body.model_dump())
    return Response(status_code=204)


@router.get("/users/me", summary="Get the caller", response_model=UserMeRead, responses=_AUTH)
async def me(caller: CurrentUser, peers: PeerClients) -> Any:
    """The authenticated user, with their email."""
    return await peers.users.call("GET", "/users/me", identity=caller)


@router.patch(
    "/users/me",
    summary="Update the caller's profile",
    response_model=UserMeRead,
    responses=problems(400, 401, 413, 422, 429, 503),
)
async def update_me(body: ProfileUpdate, caller: CurrentUser, peers: PeerClients) -> Any:
    """Set any of the caller's first and last name, location and bio (up to 150 characters,
    line breaks allowed); a field left out is kept, a name set to null is cleared."""
    return await peers.users.call(
        "PATCH", "/users/me", identity=caller, json=body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/users/me",
    summary="Delete the caller's account",
    status_code=204,
    response_class=Response,
    responses=problems(400, 401, 413, 422, 429, 503),
)
async def delete_me(body: AccountDelete, caller: CurrentUser, peers: PeerClients) -> Response:
    """Delete the caller's account, with its password: its posts (and their media), likes,
    comments, follows and notifications go, its posts leave every feed and count within 5
    seconds, and its username and email are free again at once."""
    await peers.users.call("DELETE", "/users/me", identity=caller, json=body.model_dump())
    return Response(status_code=204)


def _is_text(value: str) -> bool:
    try:
        single_line_text(value)
    except ValueError:
        return False
    return True


@router.get(
    "/users/search",
    summary="Search users",
    response_model=UsersPage,
    responses=problems(400, 401, 422, 429, 503),
)
async def search(
    caller: CurrentUser,
    peers: PeerClients,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="The start of a username, first name or last name (any case).",
        ),
    ],
    limit: Limit = 20,
    cursor: str | None = None,
) -> Any:
    """Users whose username, first or last name starts with `q`, ignoring case: the user of
    exactly that username first, then the most followed."""
    if not q.strip() or not _is_text(q):
        detail = "q must have a visible character and no control characters."
        errors = [{"loc": ["query", "q"], "msg": detail, "type": "value_error"}]
        raise Problem(422, detail, title="Validation failed", extra={"errors": errors})
    params: dict[str, str | int] = {"q": q, "limit": limit}
    if cursor:
        params["cursor"] = cursor
    return await peers.users.call("GET", "/users/search", identity=caller, params=params)


# A profile carries `viewer` (the caller's relationship) unless it is the caller's own: the
# field is left out, not null, so these answer only the fields user-service set.
@router.get(
    "/users/by-username/{username}",
    summary="Get a user by username",
    response_model=ProfileRead,
    response_model_exclude_unset=True,
    responses=problems(401, 404, 429, 503),
)
async def by_username(caller: CurrentUser, username: UsernamePath, peers: PeerClients) -> Any:
    """A user by username, matched ignoring case, with `viewer` (how the caller and the user follow
    each other) unless it is the caller; a name no account could have is a 404."""
    return await peers.users.call("GET", f"/users/by-username/{username}", identity=caller)


@router.get(
    "/users/{user_id}",
    summary="Get a user",
    response_model=ProfileRead,
    response_model_exclude_unset=True,
    responses=problems(401, 404, 429, 503),
)
async def get_user(caller: CurrentUser, user_id: UserIdPath, peers: PeerClients) -> Any:
    """A user by ID, with `viewer` (how the caller and the user follow each other) unless it is
    the caller."""
    return await peers.users.call("GET", f"/users/{user_id}", identity=caller)


@router.post(
    "/users/{user_id}/follow",
    summary="Follow a user",
    response_model=FollowRead,
    responses=problems(401, 404, 422, 429, 503),
)
async def follow(caller: CurrentUser, user_id: UserIdPath, peers: PeerClients) -> Any:
    """The caller follows the user (idempotent); following oneself is a 422. Their recent posts
    reach the caller's feed within 5 seconds."""
    return await peers.users.call("POST", f"/users/{user_id}/follow", identity=caller)


@router.delete(
    "/users/{user_id}/follow",
    summary="Unfollow a user",
    status_code=204,
    response_class=Response,
    responses=problems(401, 404, 429, 503),
)
async def unfollow(caller: CurrentUser, user_id: UserIdPath, peers: PeerClients) -> Response:
    """The caller stops following the user (idempotent: not following is a 204 too); their posts
    leave the caller's feed within 5 seconds."""
    await peers.users.call("DELETE", f"/users/{user_id}/follow", identity=caller)
    return Response(status_code=204)


@router.get(
    "/users/{user_id}/followers",
    summary="List a user's followers",
    response_model=UsersPage,
    responses=problems(400, 401, 404, 422, 429, 503),
)
async def followers(
    caller: CurrentUser,
    user_id: UserIdPath,
    peers: PeerClients,
    limit: Limit = 20,
    cursor: str | None = None,
) -> Any:
    """A page of the users who follow the user, newest follow first."""
    return await relay_page(
        peers.users, f"/users/{user_id}/followers", caller, limit=limit, cursor=cursor
    )


@router.get(
    "/users/{user_id}/following",
    summary="List whom a user follows",
    response_model=UsersPage,
    responses=problems(400, 401, 404, 422, 429, 503),
)
async def following(
    caller: CurrentUser,
    user_id: UserIdPath,
    peers: PeerClients,
    limit: Limit = 20,
    cursor: str | None = None,
) -> Any:
    """A page of the users the user follows, newest follow first."""
    return await relay_page(
        peers.users, f"/users/{user_id}/following", caller, limit=limit, cursor=cursor
    )
