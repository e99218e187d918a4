"""FastAPI dependencies for services behind the gateway: who is calling, verified."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from photogram_contracts.identity import Identity

from photogram_common.identity import INTERNAL_HEADER, InvalidToken, verify_internal_token
from photogram_common.problems import Problem
from photogram_common.roots import ServiceRoot, root_of


def _unauthorized() -> Problem:
    return Problem(
        401,
        "Missing or invalid internal identity.",
        title="Unauthorized",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def caller_identity(request: Request) -> Identity:
    """The verified caller: a user (user_id > 0) or another service (user_id 0)."""
    token = request.headers.get(INTERNAL_HEADER)
    if not token:
        raise _unauthorized()
    try:
        return verify_internal_token(
            token, secret=root_of(request.app, ServiceRoot).internal_secret
        )
    except InvalidToken as exc:
        raise _unauthorized() from exc


async def user_identity(caller: Annotated[Identity, Depends(caller_identity)]) -> Identity:
    """The verified end user on whose behalf the gateway calls."""
    if caller.user_id <= 0:
        raise _unauthorized()
    return caller


Caller = Annotated[Identity, Depends(caller_identity)]
CurrentUser = Annotated[Identity, Depends(user_identity)]
