"""Events between the outbox and the consumers survive a restart; dedup IDs do not pile up.

In the embedded mode the bus keeps its log and the groups' offsets in the data directory,
so an event published (its outbox row marked sent) but not yet consumed is consumed after
the restart, as it is on Kafka.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from helpers import Api, eventually, post_photo
from photogram_common.settings import PlatformSettings, resolve_secrets
from photogram_common.timeutil import utcnow
from photogram_runner.embedded import compose, running
from user_service.models import processed_events


async def posts_count(api: Api, user: dict[str, Any]) -> int:
    me = (await api.client.get("/api/users/me", headers=user["headers"])).json()
    return int(me["posts_count"])


async def test_an_event_sent_but_not_yet_consumed_is_counted_after_a_restart(
    backend_env: dict[str, str],
) -> None:
    first = compose(resolve_secrets(PlatformSettings()))
    async with running(first), first.gateway.router.lifespan_context(first.gateway):
        transport = httpx.ASGITransport(app=first.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client)
            ana = await api.signup("ana")
            # The counter is still at the event when the process stops.
            users = first.services["user-service"].state.users
            reached = asyncio.Event()

            async def never_finishes(**_: Any) -> None:
                reached.set()
                await asyncio.Event().wait()

            users.on_post_event = never_finishes
            await post_photo(client, ana)
            await asyncio.wait_for(reached.wait(), timeout=30)
            posts = first.services["post-service"].state
            table = posts.relay._outbox.table

            async def relayed() -> bool:
                async with posts.database.transaction() as session:
                    unsent = await session.scalar(
                        select(func.count()).select_from(table).where(table.c.sent_at.is_(None))
                    )
                return unsent == 0

            await eventually(relayed, timeout=30)
            assert await posts_count(api, ana) == 0

    second = compose(resolve_secrets(PlatformSettings()))
    async with running(second), second.gateway.router.lifespan_context(second.gateway):
        transport = httpx.ASGITransport(app=second.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client)

            async def counted() -> bool:
                return await posts_count(api, ana) == 1

            await eventually(counted, timeout=30)


async def test_processed_event_ids_are_purged_after_the_retention(system: Any) -> None:
    users = system.services["user-service"].state.users
    now = utcnow()
    old = [uuid.uuid4().hex for _ in range(5)]
    recent = [uuid.uuid4().hex for _ in range(2)]
    async with users.database.transaction() as session:
        await session.execute(
            insert(processed_events),
            [{"event_id": e, "processed_at": now - timedelta(days=9)} for e in old]
            + [{"event_id": e, "processed_at": now - timedelta(days=1)} for e in recent],
        )
    assert await users.purge_processed_events(older_than=timedelta(days=8), batch=2) == 5
    async with users.database.transaction() as session:
        kept = (await session.scalars(select(processed_events.c.event_id))).all()
    assert sorted(kept) == sorted(recent)
