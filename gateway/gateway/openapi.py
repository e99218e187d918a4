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
# Swagger UI's sections, in this order; an operation's is that of the first prefix below
# that its path starts with.
_TAG_ORDER = (
    "auth",
    "profiles",
    "follows",
    "posts",
    "feed",
    "likes and comments",
    "media",
    "notifications",
    "health",
)
_TAGS = (
    ("/api/auth/", "auth"),
    ("/api/users/me/avatar", "profiles"),
    ("/api/avatars/", "profiles"),
    ("/api/users/{user_id}/posts", "posts"),
    ("/api/users/{user_id}/follow", "follows"),
    ("/api/users/", "profiles"),
    ("/api/upload", "posts"),
    ("/api/post/{post_id}/like", "likes and comments"),
    ("/api/post/{post_id}/comments", "likes and comments"),
    ("/api/comments/", "likes and comments"),
    ("/api/post/", "posts"),
    ("/api/feed", "feed"),
    ("/api/media/", "media"),
    ("/api/notifications", "notifications"),
    ("/", "health"),
)


def _is_problem(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).values()
    refs = {media.get("schema", {}).get("$ref", "") for media in content}
    return any(ref == PROBLEM_REF or ref.endswith("/HTTPValidationError") for ref in refs)


def _tag(document: dict[str, Any]) -> None:
    for path, operations in document.get("paths", {}).items():
        tag = next(name for prefix, name in _TAGS if path.startswith(prefix))
        for operation in operations.values():
            operation["tags"] = [tag]
    document["tags"] = [{"name": name} for name in _TAG_ORDER]


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
            _tag(document)
            app.openapi_schema = document
        return app.openapi_schema

    return openapi
