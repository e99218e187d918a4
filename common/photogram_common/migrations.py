"""Alembic migrations, run the same way on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

from alembic import context
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from photogram_common.db import Database


@functools.cache
def _script_directory(script_location: str) -> ScriptDirectory:
    return ScriptDirectory(script_location)


def alembic_config(script_location: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade_to_head(database: Database, script_location: Path) -> None:
    """Bring the database's schema to the newest migration."""
    config = alembic_config(script_location, database.url)

    script = _script_directory(str(script_location))

    def _upgrade(sync_connection: Any) -> None:
        # What `alembic upgrade head` does, with the revision files parsed once per process.
        config.attributes["connection"] = sync_connection
        with EnvironmentContext(
            config,
            script,
            fn=lambda rev, _: script._upgrade_revs("head", rev),
            destination_rev="head",
        ):
            script.run_env()

    async with database.engine.begin() as conn:
        await conn.run_sync(_upgrade)


def run_env(metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection, metadata)
        return
    # Called from the alembic command line: open our own async connection.
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"

    async def _with_engine() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_run, metadata)
        await engine.dispose()

    asyncio.run(_with_engine())


def _run(connection: Any, metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
