"""Public routes for uploads, posts, media and the feed."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from photogram_contracts.identity import Identity
from photogram_contracts.schemas import MediaRead, PostRead, PostsPage, UserMeRead
from starlette.types import Scope

from gateway.api import (
    CurrentUser,
    MediaIdPath,
    PeerClients,
    PostIdPath,
    UserIdPath,
    admit,
    anonymous,
    edge,
)
from gateway.api.problems import problems
from gateway.service import relay_page
from photogram_common.clients import raise_for_problem
from photogram_common.fastroutes import header, page_query
from photogram_common.identity import InvalidToken, verify_access_token
from photogram_common.ids import parse_id
from photogram_common.problems import Problem

router = APIRouter(prefix="/api")
log = logging.getLogger(__name__)
Limit = Annotated[int, Query(ge=1, le=100)]
MAX_FILES = 10
# media-service knows the variant names; anything else cannot name one.
T = TypeVar("T")
VARIANT_NAME = re.compile(r"[a-z]{1,32}")
# An upload's Idempotency-Key: 1 to 255 visible ASCII characters (a UUID, say).
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_FILES,
                            "items": {"type": "string", "format": "binary"},
                        },
                        "caption": {"type": "string", "maxLength": 2200},
                        "location": {"type": "string", "maxLength": 100},
                    },
                }
            }
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": (
                "Makes a retry safe: the same key with the same upload, from the same user "
                "within 24 hours, answers the first post again (the same 201) instead of "
                "making another; the same key with a different upload is a 422."
            ),
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
        }
    ],
}


_JPEG = {
    "description": "The JPEG bytes",
    "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
}
_REDIRECT = {"description": "A redirect to a time-limited object-store URL"}


@router.post(
    "/upload",
    summary="Upload a post",
    status_code=201,
    response_model=PostRead,
    openapi_extra=_UPLOAD_BODY,
    responses=problems(400, 401, 413, 415, 422, 429, 503),
)
async def upload(request: Request, caller: CurrentUser, peers: PeerClients) -> JSONResponse:
    """Create media from 1 to 10 images, then the post that shows them, or nothing at all.

    With an Idempotency-Key, a retry of the same upload answers the first post again.
    """
    # One way, nothing to undo here: media-service stores the media (pending) and signs a
    # claim on them, post-service makes the post of the claim without calling media-service
    # back, and media-service's sweeper deletes media no post was made of.
    key = _idempotency_key(request)
    ceiling = _upload_ceiling(request, files=MAX_FILES)
    if key is not None:
        earlier = await peers.catalog.earlier_use(caller, key)
        if earlier is not None:
            # Used before: only the body's digest is needed, nothing is stored again.
            digest = await _relay(request, peers.library.digest, caller, ceiling)
            if digest != earlier.request_hash:
                raise _key_reused()
            return _created(earlier.post.model_dump(), replayed=True)
    uploaded = await _relay(request, peers.library.store, caller, ceiling)
    body: dict[str, Any] = {
        "caption": uploaded.caption,
        "location": uploaded.location,
        "claim": uploaded.claim,
    }
    if key is not None:
        body |= {"idempotency_key": key, "request_hash": uploaded.request_hash}
    response = await peers.posts.request("POST", "/posts", identity=caller, json=body)
    raise_for_problem("post-service", response)
    # 200: another request with this key made the post first, and that one answers.
    return _created(response.json(), replayed=response.status_code == 200)


def _upload_ceiling(request: Request, *, files: int) -> int:
    """The most bytes an upload of `files` files may send (a megabyte for the parts'
    headers and text fields besides); a declared length past it is a 413 before any byte
    is read, a Content-Type that is not ASCII a 400."""
    if not request.headers.get("content-type", "").isascii():
        raise Problem(400, "The Content-Type header is not ASCII.", title="Bad request")
    ceiling = files * edge(request.app).max_upload_bytes + 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > ceiling:
        raise _upload_too_large()
    return ceiling


def _idempotency_key(request: Request) -> str | None:
    values = request.headers.getlist("idempotency-key")
    if not values:
        return None
    if len(values) > 1 or not IDEMPOTENCY_KEY.fullmatch(values[0]):
        detail = "Idempotency-Key must be one value of 1 to 255 visible ASCII characters."
        errors = [{"loc": ["header", "Idempotency-Key"], "msg": detail, "type": "value_error"}]
        raise Problem(422, detail, title="Validation failed", extra={"errors": errors})
    return values[0]


def _key_reused() -> Problem:
    detail = "This Idempotency-Key was used for a different upload."
    errors = [{"loc": ["header", "Idempotency-Key"], "msg": detail, "type": "idempotency_key"}]
    return Problem(422, detail, title="Validation failed", extra={"errors": errors})


def _created(post: dict[str, Any], *, replayed: bool) -> JSONResponse:
    headers = {"Location": f"/api/post/{post['post_id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(post, status_code=201, headers=headers)


async def _relay(
    request: Request, send: Callable[..., Awaitable[T]], caller: Identity, ceiling: int
) -> T:
    """Stream the upload's body to media-service, stopped past `ceiling` bytes."""
    stream = _Ceiling(request.stream(), ceiling)
    try:
        result = await send(
            caller, stream.__aiter__(), content_type=request.headers.get("content-type", "")
        )
    except Exception:
        if stream.passed:
            raise _upload_too_large() from None
        raise
    if stream.passed:
        raise _upload_too_large()
    return result


def _upload_too_large() -> Problem:
    return Problem(413, "The upload is too large.", title="Content too large")


class _Ceiling:
    """Relays a body until it passes `ceiling` bytes, then stops it (with or without a
    Content-Length, a client cannot stream more than ten files' worth through)."""

    def __init__(self, chunks: AsyncIterator[bytes], ceiling: int) -> None:
        self._chunks = chunks
        self._left = ceiling
        self.passed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            self._left -= len(chunk)
            if self._left < 0:
                self.passed = True
                raise ValueError("the upload passed its ceiling")
            yield chunk


@router.get(
    "/post/{post_id}",
    summary="Get a post",
    response_model=PostRead,
    responses=problems(401, 404, 429, 503),
)
async def get_post(caller: CurrentUser, post_id: PostIdPath, peers: PeerClients) -> Any:
    """One post with its media, in upload order, and the caller's `viewer.liked`; a deleted post
    is a 404."""
    return await peers.posts.call("GET", f"/posts/{post_id}", identity=caller)


@router.delete(
    "/post/{post_id}",
    summary="Delete a post",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404, 429, 503),
)
async def delete_post(caller: CurrentUser, post_id: PostIdPath, peers: PeerClients) -> Response:
    """Delete the caller's own post (403 for anyone else's): a 404 at once; it leaves every feed,
    and its media and their bytes go, within 5 seconds."""
    await peers.posts.call("DELETE", f"/posts/{post_id}", identity=caller)
    # Feeds drop it at once; the fan-out removes it from timelines shortly after.
    try:
        await peers.feed_cache.forget(post_id, by=caller)
    except Problem:
        log.warning("could not tell feed-service about a deleted post", extra={"post_id": post_id})
    return Response(status_code=204)


@router.get(
    "/users/{user_id}/posts",
    summary="List a user's posts",
    response_model=PostsPage,
    responses=problems(400, 401, 404, 422, 429, 503),
)
async def user_posts(
    caller: CurrentUser,
    user_id: UserIdPath,
    peers: PeerClients,
    limit: Limit = 20,
    cursor: str | None = None,
) -> Any:
    """A page of the user's posts, newest first."""
    await peers.users.call("GET", f"/users/{user_id}", identity=caller)
    return await relay_page(
        peers.posts, f"/users/{user_id}/posts", caller, limit=limit, cursor=cursor
    )


@router.get(
    "/feed",
    summary="Read the home feed",
    response_model=PostsPage,
    responses=problems(400, 401, 403, 422, 429, 503),
)
async def feed(
    caller: CurrentUser,
    peers: PeerClients,
    limit: Limit = 20,
    cursor: str | None = None,
    user_id: Annotated[str | None, Query(alias="userId")] = None,
) -> Any:
    """The caller's home feed: posts by the accounts they follow and their own, newest first;
    a new post appears within 5 seconds. `userId`, when sent, must be the caller's ID (403
    otherwise)."""
    if user_id is not None and user_id != str(caller.user_id):
        raise Problem(403, "You can only read your own feed.", title="Forbidden")
    return await relay_page(peers.feed, "/feed", caller, limit=limit, cursor=cursor)


async def feed_fast(scope: Scope) -> Response | None:
    """`GET /api/feed` with a valid bearer token and a plain page query, without FastAPI's
    routing (photogram_common.fastroutes); anything else is left to `feed` above."""
    query = page_query(scope)
    authorization = header(scope, b"authorization")
    if query is None or authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    root = edge(scope["app"])
    policy = root.policy
    try:
        caller = verify_access_token(token, secret=policy.jwt_secret)
    except InvalidToken:
        return None  # the route answers it: 401, counted against the address
    await admit(policy, caller)
    limit, cursor = query
    return await relay_page(root.peers.feed, "/feed", caller, limit=limit, cursor=cursor)


@router.get(
    "/media/{media_id}",
    summary="Get a media item",
    response_model=MediaRead,
    responses=problems(401, 404, 429, 503),
)
async def get_media(caller: CurrentUser, media_id: MediaIdPath, peers: PeerClients) -> Any:
    """One media item: its upright size, blurhash and the URL of each variant."""
    return await peers.media.call("GET", f"/media/{media_id}", identity=caller)


_AVATAR_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.put(
    "/users/me/avatar",
    summary="Set the caller's avatar",
    response_model=UserMeRead,
    openapi_extra=_AVATAR_BODY,
    responses=problems(400, 401, 413, 415, 422, 429, 503),
)
async def put_avatar(request: Request, caller: CurrentUser, peers: PeerClients) -> Any:
    """Make one image (a part named `file`: JPEG, PNG, WebP or HEIC, the upload's limits)
    the caller's avatar: centre-cropped squares of 150 and 320 pixels, with no metadata."""
    ceiling = _upload_ceiling(request, files=1)
    avatar = await _relay(request, peers.library.set_avatar, caller, ceiling)
    return await peers.directory.set_avatar(caller, avatar)


@router.delete(
    "/users/me/avatar",
    summary="Remove the caller's avatar",
    status_code=204,
    response_class=Response,
    responses=problems(401, 429, 503),
)
async def delete_avatar(caller: CurrentUser, peers: PeerClients) -> Response:
    """Remove the caller's avatar (none: nothing changes)."""
    await peers.directory.set_avatar(caller, None)
    await peers.library.drop_avatar(caller)
    return Response(status_code=204)


@router.get(
    "/avatars/{avatar_id}/{variant}.jpg",
    summary="Get an avatar image",
    dependencies=[Depends(anonymous)],
    response_class=Response,
    responses={200: _JPEG, 307: _REDIRECT, **problems(404, 429, 503)},
)
async def avatar_bytes(avatar_id: str, variant: str, peers: PeerClients) -> Response:
    """An avatar's JPEG bytes (no auth), or a redirect to a time-limited object-store URL."""
    if parse_id(avatar_id) is None or not VARIANT_NAME.fullmatch(variant):
        raise Problem(404, "No such avatar.", title="Not found")
    response = await peers.media.request("GET", f"/avatars/{avatar_id}/{variant}.jpg")
    raise_for_problem("media-service", response)
    return _passed_image(response)


@router.get(
    "/media/{media_id}/{variant}.jpg",
    summary="Get a media variant's image",
    dependencies=[Depends(anonymous)],
    response_class=Response,
    responses={200: _JPEG, 307: _REDIRECT, **problems(404, 429, 503)},
)
async def media_bytes(media_id: MediaIdPath, variant: str, peers: PeerClients) -> Response:
    """A variant's JPEG bytes (no auth), or a redirect to a time-limited object-store URL."""
    if not VARIANT_NAME.fullmatch(variant):
        raise Problem(404, "No such media variant.", title="Not found")
    response = await peers.media.request("GET", f"/media/{media_id}/{variant}.jpg")
    raise_for_problem("media-service", response)
    return _passed_image(response)


def _passed_image(response: Any) -> Response:
    """media-service's image answer, with only the headers a client needs."""
    passed = {
        k: v
        for k, v in response.headers.items()
        if k.lower()
        in (
            "content-type",
            "cache-control",
            "location",
            "x-content-type-options",
            "content-security-policy",
        )
    }
    return Response(response.content, status_code=response.status_code, headers=passed)
