"""RFC 9457 problem details: one exception type and the handlers that render it."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from photogram_common.ids import NoWorkerId

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error a client can act on, rendered as problem JSON with its status."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


def problem_response(problem: Problem) -> JSONResponse:
    """Render a Problem as an application/problem+json response."""
    return JSONResponse(
        problem.body(), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and kind: the raw input may be large or sensitive.
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]


async def _on_problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _on_http_exception(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    return problem_response(Problem(exc.status_code, detail, headers=headers))


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problem = Problem(
        422,
        "The request is not valid.",
        title="Validation failed",
        extra={"errors": _validation_errors(exc)},
    )
    return problem_response(problem)


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(Problem(500, "Something went wrong on our side."))


async def _on_no_worker_id(_: Request, exc: Exception) -> JSONResponse:
    log.warning("no worker id held: refusing a write", extra={"error": str(exc)})
    unavailable = Problem(
        503,
        "The service is briefly unable to create anything; try again shortly.",
        title="Service unavailable",
        headers={"Retry-After": "1"},
    )
    return problem_response(unavailable)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of the app, FastAPI's own included, problem JSON."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(NoWorkerId, _on_no_worker_id)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)
