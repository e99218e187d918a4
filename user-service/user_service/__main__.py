"""Run user-service: `python -m user_service` serves it, `... migrate` migrates its database."""

from __future__ import annotations

from photogram_common.service_main import service_main
from user_service.app import MIGRATIONS, create_app, database_for
from user_service.settings import UserServiceSettings

if __name__ == "__main__":
    service_main(
        name="user-service",
        settings_type=UserServiceSettings,
        create_app=create_app,
        database_for=database_for,
        migrations=MIGRATIONS,
    )
