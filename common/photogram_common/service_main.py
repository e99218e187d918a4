"""The command line every HTTP service shares: `serve` (default) and `migrate`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photogram_common.logs import configure_logging
from photogram_common.metrics import set_process_service
from photogram_common.migrations import upgrade_to_head
from photogram_common.runtime import make_bus, serve
from photogram_common.settings import PlatformSettings, resolve_secrets
from photogram_common.tracing import configure_tracing


def service_main(
    *,
    name: str,
    settings_type: type[Any],
    create_app: Callable[..., Any],
    database_for: Callable[..., Any] | None = None,
    migrations: Path | None = None,
) -> None:
    """Parse argv, load settings (refusing bad ones), then serve or migrate."""
    configure_logging(name)
    set_process_service(name)
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    platform = resolve_secrets(PlatformSettings())
    settings = settings_type()
    if command == "migrate":
        if database_for is None or migrations is None:
            raise SystemExit(f"{name} has no database to migrate")
        asyncio.run(_migrate(database_for(platform, settings), migrations))
        return
    if command != "serve":
        raise SystemExit(f"usage: python -m {name.replace('-', '_')} [serve|migrate]")
    configure_tracing(name)
    app = create_app(platform, settings, bus=make_bus(platform, client_id=name))
    serve(app, host=settings.host, port=settings.port)


async def _migrate(database: Any, migrations: Path) -> None:
    try:
        await upgrade_to_head(database, migrations)
    finally:
        await database.dispose()
