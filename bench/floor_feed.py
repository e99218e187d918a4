"""The floor of the feed benchmark: a service that answers `GET /feed` with a canned page.

Built like Photogram's feed-service (`create_service_app`: problem JSON, request IDs, one log
line per request; served by the same uvicorn setup; the same fast route for a plain page
query, photogram_common.fastroutes), it checks the gateway's internal identity header as
feed-service does, then returns 20
posts (the shape of `PostRead`, with the bench data's media JSON) made once, as bytes.
A second gateway pointed at it (`PHOTOGRAM_FEED_SERVICE_URL`) measures what the
gateway -> feed-service hop costs with no feed work behind it.

    PHOTOGRAM_MODE=distributed PHOTOGRAM_JWT_SECRET=... PHOTOGRAM_INTERNAL_SECRET=... \\
        uv run python bench/floor_feed.py --port 8190
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Response
from starlette.middleware import Middleware
from starlette.types import Scope

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feed_graph import media_json
from photogram_contracts.schemas import PostsPage

from photogram_common.callers import CurrentUser
from photogram_common.cursors import encode_cursor
from photogram_common.fastroutes import FastRoutes, header, page_query
from photogram_common.identity import INTERNAL_HEADER, InvalidToken, verify_internal_token
from photogram_common.logs import configure_logging
from photogram_common.runtime import serve
from photogram_common.settings import PlatformSettings, resolve_secrets
from photogram_common.web import add_health_routes, create_service_app


def canned_page(size: int = 20) -> bytes:
    """A page of `size` posts as the feed returns them, validated against PostsPage."""
    step = 1 << 22  # one millisecond of IDs
    first_post, first_media, first_author = 120_000_000_000_000_000, 120_000_000_100_000_000, 10**16
    items = []
    for i in range(size):
        post_id, media_id, user_id = first_post - i * step, first_media - i * step, first_author + i
        items.append(
            {
                "post_id": str(post_id),
                "user_id": str(user_id),
                "author": {"user_id": str(user_id), "username": f"u{user_id}"},
                "caption": f"bench post {post_id}",
                "location": None,
                "created_at": "2026-11-30T12:00:00.000Z",
                "media": [json.loads(media_json(media_id, user_id))],
            }
        )
    last = int(items[-1]["post_id"])
    page = PostsPage.model_validate({"items": items, "next_cursor": encode_cursor(last)})
    return page.model_dump_json().encode()


def create_app(platform: PlatformSettings) -> FastAPI:
    body = canned_page()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    async def feed_fast(scope: Scope) -> Response | None:
        # As feed-service's fast route (feed_service.api.feed_fast), with no feed behind it.
        token = header(scope, INTERNAL_HEADER.encode())
        if page_query(scope) is None or token is None:
            return None
        try:
            caller = verify_internal_token(token, secret=platform.internal_secret)
        except InvalidToken:
            return None
        return Response(body, media_type="application/json") if caller.user_id > 0 else None

    app = create_service_app(
        title="floor-feed",
        lifespan=lifespan,
        middleware=[Middleware(FastRoutes, routes={"/feed": feed_fast})],
    )
    app.state.internal_secret = platform.internal_secret

    @app.get("/feed")
    async def feed(caller: CurrentUser) -> Response:
        return Response(body, media_type="application/json")

    add_health_routes(app, lambda: {})
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8190)
    args = parser.parse_args()
    configure_logging("floor-feed")
    serve(create_app(resolve_secrets(PlatformSettings())), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
