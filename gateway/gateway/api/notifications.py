"""Public routes for notifications: notification-service keeps them, user-service names
their actors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from photogram_contracts.internal import NotificationRecordsPage
from photogram_contracts.schemas import MarkReadCreate, NotificationsPage, UnreadCountRead

from gateway.api import CurrentUser, PeerClients
from gateway.api.problems import problems

router = APIRouter(prefix="/api")
Limit = Annotated[int, Query(ge=1, le=100)]


@router.get(
    "/notifications",
    summary="List notifications",
    response_model=NotificationsPage,
    responses=problems(400, 401, 422, 429, 503),
)
async def notifications(
    caller: CurrentUser, peers: PeerClients, limit: Limit = 20, cursor: str | None = None
) -> Any:
    """The caller's notifications, newest first: follows, likes and comments by others."""
    params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    found = NotificationRecordsPage.model_validate(
        await peers.notifications.call("GET", "/notifications", identity=caller, params=params)
    )
    actors = sorted({n.actor_id for n in found.items})
    names = {u.user_id: u.username for u in await peers.directory.batch(caller, actors)}
    items = [
        {
            "notification_id": n.notification_id,
            "type": n.type,
            "actor": {"user_id": n.actor_id, "username": names[n.actor_id]},
            "post_id": n.post_id,
            "comment_id": n.comment_id,
            "created_at": n.created_at,
            "read": n.read,
        }
        for n in found.items
        if n.actor_id in names  # an actor whose account is gone is left out
    ]
    return {"items": items, "next_cursor": found.next_cursor}


@router.get(
    "/notifications/unread-count",
    summary="Count unread notifications",
    response_model=UnreadCountRead,
    responses=problems(401, 429, 503),
)
async def unread_count(caller: CurrentUser, peers: PeerClients) -> Any:
    """How many of the caller's notifications are unread."""
    return await peers.notifications.call("GET", "/notifications/unread-count", identity=caller)


@router.post(
    "/notifications/mark-read",
    summary="Mark notifications read",
    status_code=204,
    response_class=Response,
    responses=problems(400, 401, 413, 422, 429, 503),
)
async def mark_read(body: MarkReadCreate, caller: CurrentUser, peers: PeerClients) -> Response:
    """Mark the notification `up_to` and every older one read."""
    await peers.notifications.call(
        "POST", "/notifications/mark-read", identity=caller, json=body.model_dump()
    )
    return Response(status_code=204)
