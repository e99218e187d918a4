"""Autogenerate a migration: python scripts/make_migration.py user_service "message"."""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

from alembic import command

from photogram_common.migrations import alembic_config


def main() -> None:
    package, message = sys.argv[1], sys.argv[2]
    location = Path(importlib.import_module(package).__file__).parent / "migrations"
    with tempfile.TemporaryDirectory() as tmp:
        config = alembic_config(location, f"sqlite+aiosqlite:///{tmp}/schema.db")
        command.upgrade(config, "head")
        command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    main()
