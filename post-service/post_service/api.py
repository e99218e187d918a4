"""post-service HTTP routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from photogram_contracts.internal import (
    CountsLookup,
    CountsPage,
    LikedRead,
    LikerIdsPage,
    NewestPageLookup,
)
from photogram_contracts.schemas import CommentCreate, CommentRead, CommentsPage, LikeRead

from photogram_common.callers import Caller, CurrentUser
from photogram_common.db import Database
from photogram_common.ids import parse_id
from photogram_common.outbox import OutboxRelay
from photogram_common.problems import Problem
from photogram_common.roots import ServiceRoot, root_of
from post_service.engagement import Engagement
from post_service.schemas import (
    HoldersLookup,
    HoldersRead,
    IdempotencyKeyRead,
    IdempotencyKeySearch,
    PostCreate,
    PostIdsRead,
    PostRead,
    PostsBatchCreate,
    PostsPage,
    RebuildCreate,
)
from post_service.service import PostService

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=100)]


@dataclass(frozen=True)
class PostServiceRoot(ServiceRoot):
    """post-service's process, as its app.py composes it."""

    posts: PostService
    engagement: Engagement
    database: Database
    relay: OutboxRelay


async def get_service(request: Request) -> PostService:
    return root_of(request.app, PostServiceRoot).posts


async def get_engagement(request: Request) -> Engagement:
    return root_of(request.app, PostServiceRoot).engagement


Posts = Annotated[PostService, Depends(get_service)]
Likes = Annotated[Engagement, Depends(get_engagement)]


async def post_id_path(post_id: str) -> int:
    parsed = parse_id(post_id)
    if parsed is None:
        raise Problem(404, "No such post.", title="Not found")
    return parsed


PostIdPath = Annotated[int, Depends(post_id_path)]


@router.post("/posts", status_code=201)
async def create_post(
    body: PostCreate, posts: Posts, caller: CurrentUser, response: Response
) -> PostRead:
    """201 with the new post, made of the media media-service's claim names (a 422 for a
    claim that is forged, expired or another user's); 200 with the first one when the
    idempotency key was used."""
    post, replayed = await posts.create(caller, body)
    if replayed:
        response.status_code = 200
    return post


@router.post("/internal/idempotency-keys/search")
async def idempotency_key(
    body: IdempotencyKeySearch, posts: Posts, caller: CurrentUser
) -> IdempotencyKeyRead:
    """The caller's earlier use of an idempotency key (404: none within the window)."""
    found = await posts.earlier_use(caller, body.key)
    if found is None:
        raise Problem(404, "No such idempotency key.", title="Not found")
    return found


@router.get("/posts/{post_id}")
async def get_post(post_id: PostIdPath, posts: Posts, caller: Caller) -> PostRead:
    return await posts.get(post_id, viewer=caller)


@router.delete("/posts/{post_id}", status_code=204)
async def delete_post(post_id: PostIdPath, posts: Posts, caller: CurrentUser) -> Response:
    await posts.delete(caller, post_id)
    return Response(status_code=204)


@router.get("/users/{user_id}/posts")
async def user_posts(
    user_id: str,
    posts: Posts,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> PostsPage:
    parsed = parse_id(user_id)
    if parsed is None:
        raise Problem(404, "No such user.", title="Not found")
    return await posts.user_posts(user_id=parsed, cursor=cursor, limit=limit, viewer=caller)


@router.post("/internal/posts/batch")
async def batch(body: PostsBatchCreate, posts: Posts, _: Caller) -> PostsPage:
    ids = [p for p in (parse_id(i) for i in body.post_ids) if p is not None]
    return PostsPage(items=await posts.batch(ids), next_cursor=None)


@router.post("/internal/posts/holders")
async def holders(body: HoldersLookup, posts: Posts, _: Caller) -> HoldersRead:
    """Which live posts hold these media: media-service's sweep asks before it deletes
    pending media as orphans."""
    ids = [m for m in (parse_id(i) for i in body.media_ids) if m is not None]
    found = await posts.holders(ids)
    return HoldersRead(holders={str(m): str(p) for m, p in found.items()})


@router.post("/internal/posts/newest")
async def newest(body: RebuildCreate, posts: Posts, _: Caller) -> PostIdsRead:
    authors = [a for a in (parse_id(i) for i in body.author_ids) if a is not None]
    before = parse_id(body.before) if body.before is not None else None
    found = await posts.newest_posts_of(authors, limit=body.limit, before=before)
    return PostIdsRead(post_ids=[str(p) for p in found])


@router.post("/internal/posts/newest-page")
async def newest_page(body: NewestPageLookup, posts: Posts, _: Caller) -> PostsPage:
    """A feed page by the pull query, counts and the viewer's likes in it: what the feed
    serves while Redis cannot (one call instead of newest, batch and counts)."""
    authors = [a for a in (parse_id(i) for i in body.author_ids) if a is not None]
    before = parse_id(body.before) if body.before is not None else None
    return await posts.newest_page(
        authors, limit=body.limit, before=before, viewer_id=parse_id(body.viewer_id) or 0
    )


@router.post("/posts/{post_id}/like")
async def like(post_id: PostIdPath, likes: Likes, caller: CurrentUser) -> LikeRead:
    return await likes.like(caller, post_id)


@router.delete("/posts/{post_id}/like")
async def unlike(post_id: PostIdPath, likes: Likes, caller: CurrentUser) -> LikeRead:
    return await likes.unlike(caller, post_id)


@router.get("/posts/{post_id}/likes")
async def likers(
    post_id: PostIdPath, likes: Likes, _: Caller, limit: Limit = 20, cursor: str | None = None
) -> LikerIdsPage:
    """The post's likers' IDs, newest like first (the gateway shows them as users)."""
    user_ids, next_cursor = await likes.likers(post_id, cursor=cursor, limit=limit)
    return LikerIdsPage(user_ids=[str(u) for u in user_ids], next_cursor=next_cursor)


@router.post("/posts/{post_id}/comments", status_code=201)
async def comment(
    post_id: PostIdPath, body: CommentCreate, likes: Likes, caller: CurrentUser
) -> CommentRead:
    return await likes.comment(caller, post_id, body.text)


@router.get("/posts/{post_id}/comments")
async def comments(
    post_id: PostIdPath, likes: Likes, _: Caller, limit: Limit = 20, cursor: str | None = None
) -> CommentsPage:
    return await likes.comments(post_id, cursor=cursor, limit=limit)


@router.get("/comments/{comment_id}")
async def get_comment(comment_id: str, likes: Likes, _: Caller) -> CommentRead:
    parsed = parse_id(comment_id)
    if parsed is None:
        raise Problem(404, "No such comment.", title="Not found")
    return await likes.get_comment(parsed)


@router.delete("/comments/{comment_id}", status_code=204)
async def delete_comment(comment_id: str, likes: Likes, caller: CurrentUser) -> Response:
    parsed = parse_id(comment_id)
    if parsed is None:
        raise Problem(404, "No such comment.", title="Not found")
    await likes.delete_comment(caller, parsed)
    return Response(status_code=204)


@router.post("/internal/posts/counts")
async def counts(body: CountsLookup, likes: Likes, _: Caller) -> CountsPage:
    """Counts, their versions and the viewer's likes, for the feed's cache misses."""
    ids = [p for p in (parse_id(i) for i in body.post_ids) if p is not None]
    viewer = parse_id(body.viewer_id) or 0
    return CountsPage(items=await likes.counts(ids, viewer_id=viewer))


@router.get("/internal/users/{user_id}/liked")
async def liked(user_id: str, likes: Likes, _: Caller) -> LikedRead:
    """A user's liked posts, newest first, for the feed's liked set."""
    parsed = parse_id(user_id)
    if parsed is None:
        raise Problem(404, "No such user.", title="Not found")
    post_ids, complete = await likes.liked_posts(parsed)
    return LikedRead(post_ids=[str(p) for p in post_ids], complete=complete)
