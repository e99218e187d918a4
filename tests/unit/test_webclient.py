"""The gateway's web client routes: its pages answer index.html, its files are served, and
nothing else is shadowed (the browser tests in tests/web drive the client itself)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from gateway.webclient import PAGES, WEB_DIR, add_web_client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()

    @app.get("/api/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    add_web_client(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize("page", PAGES)
async def test_each_page_of_the_client_answers_its_shell(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page.format(post_id="7258416120135680", username="ana"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/app.js">' in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


async def test_the_client_files_are_served_with_their_types(client: httpx.AsyncClient) -> None:
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = await client.get(f"/web/{name}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
    modules = {p.name for p in (WEB_DIR / "views").glob("*.js")}
    assert {"feed.js", "post.js", "profile.js"} <= modules


@pytest.mark.parametrize(
    "path", ["/api/ping", "/api/unknown", "/healthz", "/metrics", "/u", "/p/1/x", "/nowhere"]
)
async def test_no_other_path_is_answered_with_the_client(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert not response.headers.get("content-type", "").startswith("text/html")
    if path == "/api/ping":
        assert response.json() == {"pong": "yes"}
    else:
        assert response.status_code == 404
