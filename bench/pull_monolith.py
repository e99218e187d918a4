"""The naive pull monolith: the feed a team would build first, as the feed benchmark's baseline.

One FastAPI app on one uvicorn process (uvloop, httptools) and an asyncpg pool: it
verifies the bearer token as the gateway does (`verify_access_token`, the same JWT
secret), then runs the pull query on the bench data in PostgreSQL (the reader's own and
their followees' newest posts with their media rows; the follow edges come from the
`bench_follows` copy that `bench/feed_graph.py` makes in the posts database) and returns
the feed's page shape (`PostsPage`: `{"items": [PostRead...], "next_cursor": ...}`), the
same cursor encoding included, with each post's counts and the reader's like. No cache,
no timeline, no second process.

    PHOTOGRAM_JWT_SECRET=... uv run python bench/pull_monolith.py --port 8191
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import BENCH_DBS, pg_url
from photogram_contracts.identity import Identity
from photogram_contracts.schemas import PostsPage

from photogram_common.cursors import decode_cursor, encode_cursor
from photogram_common.identity import InvalidToken, verify_access_token
from photogram_common.timeutil import to_rfc3339

# The followees' (and the reader's own) newest live posts with their counts and whether the
# reader likes each, then their media rows.
PAGE = """
WITH page AS (
    SELECT id, user_id, author_username, caption, location, created_at, likes_count,
        comments_count,
        EXISTS (SELECT 1 FROM likes WHERE likes.post_id = posts.id AND likes.user_id = $1)
            AS liked
    FROM posts
    WHERE user_id IN (
            SELECT followee_id FROM bench_follows WHERE follower_id = $1
            UNION ALL SELECT $1
        )
      AND deleted_at IS NULL
      {before}
    ORDER BY id DESC
    LIMIT $2
)
SELECT page.*, pm.media FROM page LEFT JOIN post_media pm ON pm.post_id = page.id
ORDER BY page.id DESC, pm.position
"""
FIRST_PAGE = PAGE.format(before="")
NEXT_PAGE = PAGE.format(before="AND id < $3")

bearer = HTTPBearer(auto_error=False)


def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "An access token is required.")
    try:
        return verify_access_token(credentials.credentials, secret=request.app.state.jwt_secret)
    except InvalidToken as exc:
        raise HTTPException(401, "The access token is invalid or expired.") from exc


def create_app(database_url: str, jwt_secret: str, pool_size: int) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            database_url, min_size=pool_size, max_size=pool_size
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="pull-monolith", lifespan=lifespan)
    app.state.jwt_secret = jwt_secret

    @app.get("/api/feed", response_model=PostsPage)
    async def feed(
        request: Request,
        caller: Annotated[Identity, Depends(reader)],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
    ) -> Any:
        async with request.app.state.pool.acquire() as conn:
            if cursor:
                before = decode_cursor(cursor, arity=1)[0]
                rows = await conn.fetch(NEXT_PAGE, caller.user_id, limit + 1, before)
            else:
                rows = await conn.fetch(FIRST_PAGE, caller.user_id, limit + 1)
        posts: dict[int, dict[str, Any]] = {}
        for row in rows:
            post = posts.get(row["id"])
            if post is None:
                post = posts[row["id"]] = {
                    "post_id": str(row["id"]),
                    "user_id": str(row["user_id"]),
                    "author": {"user_id": str(row["user_id"]), "username": row["author_username"]},
                    "caption": row["caption"],
                    "location": row["location"],
                    "created_at": to_rfc3339(row["created_at"]),
                    "media": [],
                    "likes_count": row["likes_count"],
                    "comments_count": row["comments_count"],
                    "viewer": {"liked": row["liked"]},
                }
            if row["media"] is not None:
                post["media"].append(json.loads(row["media"]))
        items = list(posts.values())
        more = len(items) > limit
        items = items[:limit]
        return {
            "items": items,
            "next_cursor": encode_cursor(int(items[-1]["post_id"])) if more else None,
        }

    @app.get("/readyz")
    async def readyz(request: Request) -> dict[str, str]:
        async with request.app.state.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8191)
    parser.add_argument("--pool", type=int, default=10, help="PostgreSQL connections")
    parser.add_argument("--database-url", default=pg_url(BENCH_DBS["posts"]))
    args = parser.parse_args()
    secret = os.environ.get("PHOTOGRAM_JWT_SECRET", "")
    if len(secret.encode()) < 32:
        raise SystemExit("PHOTOGRAM_JWT_SECRET must be the bench's JWT secret")
    uvicorn.run(
        create_app(args.database_url, secret, args.pool),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
