"""Pages relayed from a service to the client as the service made them."""

from __future__ import annotations

from fastapi import Response
from photogram_contracts.identity import Identity

from photogram_common.clients import ServiceClient, raise_for_problem


async def relay_page(
    client: ServiceClient, path: str, caller: Identity, *, limit: int, cursor: str | None
) -> Response:
    """Fetch one page and pass its JSON through without parsing it.

    The services build their pages from the same shared schemas; parsing and re-validating
    twenty posts here cost the gateway more CPU than the rest of its hop (docs/benchmarks.md).
    """
    params: dict[str, str | int] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = await client.fetch(path, identity=caller, params=params)
    raise_for_problem(client.name, response)
    return Response(response.content, media_type="application/json")
