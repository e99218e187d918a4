"""OpenAPI descriptions of the error responses every route may give."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ProblemRead(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Document the given error statuses as problem JSON."""
    return {
        status: {
            "model": ProblemRead,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemRead"}}},
        }
        for status in statuses
    }
