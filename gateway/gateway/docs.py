"""`/api/docs`: Swagger UI on the OpenAPI document, its scripts and styles served by the
gateway from a package (fastapi-offline's copy of swagger-ui-dist), so it renders with no
network beyond the gateway."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/docs"
ASSETS_PATH = f"{DOCS_PATH}/static"
# Swagger UI 5: the document is OpenAPI 3.1, which earlier versions cannot render.
ASSETS_PACKAGE = ("fastapi_offline", "static")


def add_docs_routes(app: FastAPI, *, openapi_url: str) -> None:
    """Serve Swagger UI at DOCS_PATH and its assets under ASSETS_PATH."""
    app.mount(ASSETS_PATH, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=None,
            # A token pasted into Authorize survives a reload of the page.
            swagger_ui_parameters={"persistAuthorization": True},
        )
