"""OpenAPI descriptions of the error responses every route may give."""

from __future__ import annotations

from typing import Any

from photogram_contracts.examples import examples
from pydantic import BaseModel

from photogram_common.problems import PROBLEM_JSON


class ProblemRead(BaseModel):
    model_config = examples(
        {"type": "about:blank", "title": "Not found", "status": 404, "detail": "No such user."}
    )

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
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemRead"}}},
        }
        for status in statuses
    }
