"""The API as a newcomer meets it: /api/docs renders from the gateway alone, every route has a
summary, a description and examples, and docs/api.md lists every route."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.routing import Route

from helpers import Api

API_NOTES = Path(__file__).parents[2] / "docs" / "api.md"
DOC_ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`")
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


async def test_swagger_ui_uses_only_the_gateway_s_own_assets(api: Api) -> None:
    page = await api.client.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # Nothing from another host: no CDN, no fonts, no analytics.
    assert not re.search(r"(https?:)?//[a-z0-9]", page.text, re.IGNORECASE), page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3, assets  # the script, the styles and the icon
    for asset in assets:
        assert asset.startswith("/api/docs/static/"), asset
        response = await api.client.get(asset)
        assert response.status_code == 200, asset
        expected = ASSET_TYPES[Path(asset).suffix]
        assert response.headers["content-type"].startswith(expected), asset
        assert len(response.content) > 1000, asset
    assert "url: '/api/openapi.json'" in page.text


async def test_swagger_ui_is_version_5_which_renders_openapi_3_1(api: Api) -> None:
    document = (await api.client.get("/api/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    bundle = await api.client.get("/api/docs/static/swagger-ui-bundle.js")
    assert re.search(r'"5\.\d+\.\d+"', bundle.text)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


async def test_every_operation_has_a_summary_a_description_and_examples(api: Api) -> None:
    document = (await api.client.get("/api/openapi.json")).json()
    sections = {tag["name"] for tag in document["tags"]}
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            summary = operation.get("summary", "").strip()
            assert summary, where
            # Not FastAPI's default, the function's name in title case.
            assert summary != operation["operationId"].split("_")[0].title(), where
            assert operation.get("description", "").strip(), where
            assert len(operation["tags"]) == 1, where
            assert operation["tags"][0] in sections, where
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                schema = _resolve(document, body["schema"])
                assert body.get("example") or body.get("examples") or schema.get("examples"), where
            for status, response in operation["responses"].items():
                media = response.get("content", {}).get("application/json")
                if media is not None and int(status) < 400 and "$ref" in media["schema"]:
                    assert _resolve(document, media["schema"]).get("examples"), (where, status)
            checked += 1
    assert checked >= 30


async def _public_routes(api: Api, app: Any) -> set[tuple[str, str]]:
    """Every public route of the gateway: the operations of its OpenAPI document (the whole
    public API and health, test_gateway_edge.py), plus the document and docs themselves."""
    document = (await api.client.get("/api/openapi.json")).json()
    public = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/"):
            public |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    return public


def _documented_routes() -> set[tuple[str, str]]:
    text = API_NOTES.read_text()
    section = text.split("\n## Routes\n", 1)[1].split("\n## ", 1)[0]
    return {
        match.groups()
        for line in section.splitlines()
        if line.startswith("| `")
        for match in [DOC_ROUTE.match(line.split("|")[1].strip())]
        if match
    }


async def test_docs_api_md_lists_exactly_the_public_routes(api: Api, system: Any) -> None:
    routes = await _public_routes(api, system.gateway)
    documented = _documented_routes()
    assert ("GET", "/api/docs") in routes
    assert len(routes) >= 38
    assert routes - documented == set(), "missing from docs/api.md, Routes"
    assert documented - routes == set(), "in docs/api.md, Routes, but not served"
