"""feed-service HTTP routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from photogram_contracts.schemas import PostsPage
from starlette.types import Scope

from feed_service.service import FeedService
from photogram_common.callers import Caller, CurrentUser
from photogram_common.fastroutes import header, page_query
from photogram_common.identity import INTERNAL_HEADER, InvalidToken, verify_internal_token
from photogram_common.ids import parse_id
from photogram_common.roots import ServiceRoot, root_of

router = APIRouter()


@dataclass(frozen=True)
class FeedServiceRoot(ServiceRoot):
    """feed-service's process, as its app.py composes it."""

    feed: FeedService


async def get_service(request: Request) -> FeedService:
    return root_of(request.app, FeedServiceRoot).feed


Feed = Annotated[FeedService, Depends(get_service)]


@router.get("/feed", response_class=Response, responses={200: {"model": PostsPage}})
async def feed(
    feed: Feed,
    caller: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> Response:
    """A page of the caller's feed, joined from cached JSON bytes (no re-validation)."""
    page = await feed.page(caller, cursor=cursor, limit=limit)
    return Response(page, media_type="application/json")


async def feed_fast(scope: Scope) -> Response | None:
    """`GET /feed` from the gateway with a plain page query, without FastAPI's routing
    (photogram_common.fastroutes); anything else is left to `feed` above."""
    query = page_query(scope)
    token = header(scope, INTERNAL_HEADER.encode())
    if query is None or token is None:
        return None
    root = root_of(scope["app"], FeedServiceRoot)
    try:
        caller = verify_internal_token(token, secret=root.internal_secret)
    except InvalidToken:
        return None  # the route answers it: 401
    if caller.user_id <= 0:
        return None
    limit, cursor = query
    page = await root.feed.page(caller, cursor=cursor, limit=limit)
    return Response(page, media_type="application/json")


@router.post("/internal/posts/{post_id}/deleted", status_code=204)
async def post_deleted(post_id: str, feed: Feed, _: Caller) -> Response:
    parsed = parse_id(post_id)
    if parsed is not None:
        await feed.bodies.forget(parsed)
    return Response(status_code=204)
