"""Run post-service: `python -m post_service` serves it, `... migrate` migrates its database."""

from __future__ import annotations

from photogram_common.service_main import service_main
from post_service.app import MIGRATIONS, create_app, database_for
from post_service.settings import PostServiceSettings

if __name__ == "__main__":
    service_main(
        name="post-service",
        settings_type=PostServiceSettings,
        create_app=create_app,
        database_for=database_for,
        migrations=MIGRATIONS,
    )
