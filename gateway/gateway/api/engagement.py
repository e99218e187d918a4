"""Public routes for likes and comments: verify, then call post-service (their owner)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from photogram_contracts.internal import LikerIdsPage
from photogram_contracts.schemas import (
    CommentCreate,
    CommentRead,
    CommentsPage,
    LikeRead,
    UsersPage,
)

from gateway.api import CurrentUser, PeerClients, PostIdPath
from gateway.api.problems import problems
from gateway.service import relay_page
from photogram_common.ids import parse_id
from photogram_common.problems import Problem

router = APIRouter(prefix="/api")
Limit = Annotated[int, Query(ge=1, le=100)]


async def comment_id_path(comment_id: str) -> int:
    parsed = parse_id(comment_id)
    if parsed is None:
        raise Problem(404, "No such comment.", title="Not found")
    return parsed


CommentIdPath = Annotated[int, Depends(comment_id_path)]


@router.post(
    "/post/{post_id}/like",
    summary="Like a post",
    response_model=LikeRead,
    responses=problems(401, 404, 429, 503),
)
async def like(caller: CurrentUser, post_id: PostIdPath, peers: PeerClients) -> Any:
    """Like the post (idempotent); answers the post's like count after it."""
    return await peers.posts.call("POST", f"/posts/{post_id}/like", identity=caller)


@router.delete(
    "/post/{post_id}/like",
    summary="Unlike a post",
    response_model=LikeRead,
    responses=problems(401, 404, 429, 503),
)
async def unlike(caller: CurrentUser, post_id: PostIdPath, peers: PeerClients) -> Any:
    """Take the like back (idempotent); answers the post's like count after it."""
    return await peers.posts.call("DELETE", f"/posts/{post_id}/like", identity=caller)


@router.get(
    "/post/{post_id}/likes",
    summary="List who likes a post",
    response_model=UsersPage,
    responses=problems(400, 401, 404, 422, 429, 503),
)
async def likers(
    caller: CurrentUser,
    post_id: PostIdPath,
    peers: PeerClients,
    limit: Limit = 20,
    cursor: str | None = None,
) -> Any:
    """The people who like the post, newest like first."""
    params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    found = await peers.posts.call("GET", f"/posts/{post_id}/likes", identity=caller, params=params)
    ids = LikerIdsPage.model_validate(found)
    return {
        "items": await peers.directory.batch(caller, ids.user_ids),
        "next_cursor": ids.next_cursor,
    }


@router.post(
    "/post/{post_id}/comments",
    summary="Comment on a post",
    status_code=201,
    response_model=CommentRead,
    responses=problems(400, 401, 404, 413, 422, 429, 503),
)
async def comment(
    body: CommentCreate, caller: CurrentUser, post_id: PostIdPath, peers: PeerClients
) -> JSONResponse:
    """Comment on the post: 1 to 2,200 characters, line breaks allowed, no other control
    characters."""
    made = await peers.posts.call(
        "POST", f"/posts/{post_id}/comments", identity=caller, json=body.model_dump()
    )
    return JSONResponse(
        made, status_code=201, headers={"Location": f"/api/comments/{made['comment_id']}"}
    )


@router.get(
    "/post/{post_id}/comments",
    summary="List a post's comments",
    response_model=CommentsPage,
    responses=problems(400, 401, 404, 422, 429, 503),
)
async def comments(
    caller: CurrentUser,
    post_id: PostIdPath,
    peers: PeerClients,
    limit: Limit = 20,
    cursor: str | None = None,
) -> Any:
    """The post's comments, oldest first."""
    return await relay_page(
        peers.posts, f"/posts/{post_id}/comments", caller, limit=limit, cursor=cursor
    )


@router.get(
    "/comments/{comment_id}",
    summary="Get a comment",
    response_model=CommentRead,
    responses=problems(401, 404, 429, 503),
)
async def get_comment(caller: CurrentUser, comment_id: CommentIdPath, peers: PeerClients) -> Any:
    """One comment (the Location of a new one)."""
    return await peers.posts.call("GET", f"/comments/{comment_id}", identity=caller)


@router.delete(
    "/comments/{comment_id}",
    summary="Delete a comment",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404, 429, 503),
)
async def delete_comment(
    caller: CurrentUser, comment_id: CommentIdPath, peers: PeerClients
) -> Response:
    """Delete a comment: its author or the post's author may."""
    await peers.posts.call("DELETE", f"/comments/{comment_id}", identity=caller)
    return Response(status_code=204)
