"""Events between the outbox and the consumers survive a restart.

In the embedded mode the bus keeps its log and the groups' offsets in the data directory,
so an event published (its outbox row marked sent) but not yet consumed is consumed after
the restart, as it is on Kafka.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from helpers import Api, eventually, post_photo
from photogram_common.settings import PlatformSettings, resolve_secrets
from photogram_runner.embedded import compose, running


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
