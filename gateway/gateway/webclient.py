"""The web client: static files from gateway/web, index.html for each of its own pages.

The client's pages are listed here, not matched by a catch-all, so no path of the API, the
health checks or anything added later is ever answered with the client's HTML; an unknown
path stays a 404 problem.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).with_name("web")
ASSETS_PATH = "/web"
# The pages app.js routes; each answers index.html, which then draws the page.
PAGES = (
    "/",
    "/login",
    "/signup",
    "/new",
    "/notifications",
    "/p/{post_id}",
    "/u/{username}",
    "/u/{username}/followers",
    "/u/{username}/following",
)
# Scripts, styles and requests from this origin only; images from anywhere, since a
# variant's URL may be an object store's presigned one.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob: http: https:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def add_web_client(app: FastAPI) -> None:
    """Serve the web client's files under /web and its pages' shell at each of PAGES."""
    index = WEB_DIR / "index.html"
    headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
    }

    async def page() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=headers)

    for path in PAGES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=WEB_DIR), name="web")
