"""Run notification-service: `python -m notification_service` serves it, `... migrate`
migrates its database."""

from __future__ import annotations

from notification_service.app import MIGRATIONS, create_app, database_for
from notification_service.settings import NotificationServiceSettings
from photogram_common.service_main import service_main

if __name__ == "__main__":
    service_main(
        name="notification-service",
        settings_type=NotificationServiceSettings,
        create_app=create_app,
        database_for=database_for,
        migrations=MIGRATIONS,
    )
