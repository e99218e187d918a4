"""Run feed-service: `python -m feed_service`."""

from __future__ import annotations

from feed_service.app import create_app
from feed_service.settings import FeedServiceSettings
from photogram_common.service_main import service_main

if __name__ == "__main__":
    service_main(name="feed-service", settings_type=FeedServiceSettings, create_app=create_app)
