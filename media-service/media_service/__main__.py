"""Run media-service: `python -m media_service` serves it, `... migrate` migrates its database."""

from __future__ import annotations

from media_service.app import MIGRATIONS, create_app, database_for
from media_service.settings import MediaServiceSettings
from photogram_common.service_main import service_main

if __name__ == "__main__":
    service_main(
        name="media-service",
        settings_type=MediaServiceSettings,
        create_app=create_app,
        database_for=database_for,
        migrations=MIGRATIONS,
    )
