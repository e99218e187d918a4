"""The gateway's public API: its composition root, the typed dependencies its routes take
(the caller's verified identity, rate limits, the peers, checked path parameters), and one
module of routes per resource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from photogram_contracts.identity import Identity
from photogram_contracts.keys import rate_subject, revoked_key
from photogram_contracts.schemas import USERNAME_PATTERN

from gateway.addresses import ClientAddresses
from gateway.ratelimit import RateLimiter, Verdict
from gateway.service import Peers
from photogram_common.identity import InvalidToken, verify_access_token
from photogram_common.ids import parse_id
from photogram_common.metrics import RATE_LIMIT_REJECTIONS, count
from photogram_common.problems import Problem
from photogram_common.roots import root_of

_bearer = HTTPBearer(auto_error=False, description="The access token from signup or login.")


@dataclass
class EdgePolicy:
    jwt_secret: str
    limiter: RateLimiter
    per_minute: int
    auth_divisor: int
    addresses: ClientAddresses


@dataclass(frozen=True)
class GatewayRoot:
    """The gateway's process, as its app.py composes it."""

    peers: Peers
    policy: EdgePolicy
    max_upload_bytes: int


def edge(app: Any) -> GatewayRoot:
    return root_of(app, GatewayRoot)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, title="Unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def _limit(request: Request, subject: str, limit: int) -> None:
    await enforce_limit(edge(request.app).policy, subject, limit)


async def enforce_limit(policy: EdgePolicy, subject: str, limit: int) -> None:
    """A 429 problem when `subject` is past `limit` requests this minute."""
    if policy.per_minute == 0:
        return
    _refuse(await policy.limiter.hit(subject, limit=limit))


async def admit(policy: EdgePolicy, caller: Identity) -> None:
    """An authenticated caller: a 401 when their session has ended, a 429 past their
    limit; one Redis call for both (photogram_common.sessions)."""
    if not policy.per_minute and not caller.session_id:
        return
    revoked = revoked_key(caller.user_id, caller.session_id) if caller.session_id else None
    verdict = await policy.limiter.hit(
        rate_subject(caller.user_id), limit=policy.per_minute, revoked_key=revoked
    )
    if verdict.revoked:
        raise _unauthorized("The session has ended: log in again.")
    _refuse(verdict)


def _refuse(verdict: Verdict) -> None:
    if not verdict.allowed:
        count(RATE_LIMIT_REJECTIONS)
        raise Problem(
            429,
            "Too many requests; slow down.",
            title="Too many requests",
            headers={"Retry-After": str(verdict.retry_after)},
        )


def client_ip(request: Request) -> str:
    policy = edge(request.app).policy
    peer = request.client.host if request.client else None
    return policy.addresses.resolve(peer, request.headers.getlist("x-forwarded-for"))


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    """Verify the bearer token (pinned algorithm; exp, iat, sub required), then rate-limit.

    A request without a valid token counts against its address, so guessing or replaying
    tokens is limited like any anonymous traffic.
    """
    policy = edge(request.app).policy
    if credentials is None or credentials.scheme.lower() != "bearer":
        await anonymous(request)
        raise _unauthorized("An access token is required.")
    try:
        identity = verify_access_token(credentials.credentials, secret=policy.jwt_secret)
    except InvalidToken as exc:
        await anonymous(request)
        raise _unauthorized("The access token is invalid or expired.") from exc
    await admit(policy, identity)
    return identity


async def anonymous(request: Request) -> None:
    """Rate-limit an unauthenticated request by its address."""
    policy = edge(request.app).policy
    await _limit(request, f"ip:{client_ip(request)}", policy.per_minute)


async def credential_endpoint(request: Request) -> None:
    """Signup and login: the address's general limit and a stricter one of their own."""
    policy = edge(request.app).policy
    await anonymous(request)
    await _limit(
        request, f"auth:{client_ip(request)}", max(1, policy.per_minute // policy.auth_divisor)
    )


async def get_peers(request: Request) -> Peers:
    return edge(request.app).peers


def _not_found(what: str) -> Problem:
    return Problem(404, f"No such {what}.", title="Not found")


# Path parameters are checked here, before they become part of a peer's URL: an ID that is
# not a decimal ID, or a name no account can have, names nothing (404), and nothing a client
# sends can add a segment, a query or a fragment to the internal request.
async def user_id_path(user_id: str) -> int:
    parsed = parse_id(user_id)
    if parsed is None:
        raise _not_found("user")
    return parsed


async def post_id_path(post_id: str) -> int:
    parsed = parse_id(post_id)
    if parsed is None:
        raise _not_found("post")
    return parsed


async def media_id_path(media_id: str) -> int:
    parsed = parse_id(media_id)
    if parsed is None:
        raise _not_found("media")
    return parsed


async def username_path(username: str) -> str:
    name = username.lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise _not_found("user")
    return name


CurrentUser = Annotated[Identity, Depends(authenticated)]
PeerClients = Annotated[Peers, Depends(get_peers)]
UserIdPath = Annotated[int, Depends(user_id_path)]
PostIdPath = Annotated[int, Depends(post_id_path)]
MediaIdPath = Annotated[int, Depends(media_id_path)]
UsernamePath = Annotated[str, Depends(username_path)]
