"""Run the fanout-worker: `python -m fanout_worker` (health on PHOTOGRAM_FANOUT_PORT)."""

from __future__ import annotations

from fanout_worker.app import create_app
from fanout_worker.settings import FanoutSettings
from photogram_common.service_main import service_main

if __name__ == "__main__":
    service_main(name="fanout-worker", settings_type=FanoutSettings, create_app=create_app)
