"""The public OpenAPI document, with every error response described as the problem JSON it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from photogram_common.problems import PROBLEM_JSON

PROBLEM_REF = "#/components/schemas/ProblemRead"
# FastAPI's own 422 shape; ours is problem JSON with an `errors` list (problems.py).
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def _is_problem(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).values()
    refs = {media.get("schema", {}).get("$ref", "") for media in content}
    return any(ref == PROBLEM_REF or ref.endswith("/HTTPValidationError") for ref in refs)


def _describe_problems(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                if _is_problem(response):
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
    schemas = document.get("components", {}).get("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)


def public_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Return the app's `openapi` callable: FastAPI's document, errors as problem JSON."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _describe_problems(document)
            app.openapi_schema = document
        return app.openapi_schema

    return openapi
