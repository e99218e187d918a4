"""The gateway's work behind its routes: the services it reaches, and the pages it relays
from them as they were made."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Response
from photogram_contracts.identity import Identity
from photogram_contracts.peers import FeedCache, MediaLibrary, PostCatalog, UserDirectory

from photogram_common.clients import ServiceClient, raise_for_problem
from photogram_common.peer_clients import (
    HttpFeedCache,
    HttpMediaLibrary,
    HttpPostCatalog,
    HttpUserDirectory,
)


@dataclass
class Peers:
    """The services behind the gateway: each one's client for the public routes the
    gateway relays, and the ports of the internal routes it uses."""

    users: ServiceClient
    posts: ServiceClient
    media: ServiceClient
    feed: ServiceClient
    notifications: ServiceClient
    catalog: PostCatalog = field(init=False)
    library: MediaLibrary = field(init=False)
    feed_cache: FeedCache = field(init=False)
    directory: UserDirectory = field(init=False)

    def __post_init__(self) -> None:
        self.catalog = HttpPostCatalog(self.posts)
        self.library = HttpMediaLibrary(self.media)
        self.feed_cache = HttpFeedCache(self.feed)
        self.directory = HttpUserDirectory(self.users)


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
