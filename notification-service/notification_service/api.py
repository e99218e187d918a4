"""notification-service HTTP routes (the gateway shows the records as Notifications)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from photogram_contracts.internal import NotificationRecordsPage
from photogram_contracts.schemas import MarkReadCreate, UnreadCountRead

from notification_service.service import Notifications
from photogram_common.bus.consumer import EventConsumer
from photogram_common.callers import CurrentUser
from photogram_common.db import Database
from photogram_common.ids import parse_id
from photogram_common.problems import Problem
from photogram_common.roots import ServiceRoot, root_of

router = APIRouter()


@dataclass(frozen=True)
class NotificationServiceRoot(ServiceRoot):
    """notification-service's process, as its app.py composes it."""

    notifications: Notifications
    database: Database
    consumer: EventConsumer


async def get_service(request: Request) -> Notifications:
    return root_of(request.app, NotificationServiceRoot).notifications


Service = Annotated[Notifications, Depends(get_service)]


@router.get("/notifications")
async def notifications(
    service: Service,
    caller: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> NotificationRecordsPage:
    return await service.page(caller.user_id, cursor=cursor, limit=limit)


@router.get("/notifications/unread-count")
async def unread_count(service: Service, caller: CurrentUser) -> UnreadCountRead:
    return UnreadCountRead(count=await service.unread_count(caller.user_id))


@router.post("/notifications/mark-read", status_code=204)
async def mark_read(body: MarkReadCreate, service: Service, caller: CurrentUser) -> Response:
    up_to = parse_id(body.up_to)
    if up_to is None:
        detail = "up_to must be a notification ID."
        errors = [{"loc": ["body", "up_to"], "msg": detail, "type": "value_error"}]
        raise Problem(422, detail, title="Validation failed", extra={"errors": errors})
    await service.mark_read(caller.user_id, up_to=up_to)
    return Response(status_code=204)
