"""Run the gateway: `python -m gateway` (port PHOTOGRAM_PORT)."""

from __future__ import annotations

from gateway.app import create_app
from gateway.serving import gateway_server
from gateway.settings import GatewaySettings
from photogram_common.logs import configure_logging
from photogram_common.metrics import set_process_service
from photogram_common.settings import PlatformSettings, resolve_secrets
from photogram_common.tracing import configure_tracing

if __name__ == "__main__":
    configure_logging("gateway")
    set_process_service("gateway")
    configure_tracing("gateway")
    platform = resolve_secrets(PlatformSettings())
    settings = GatewaySettings()
    gateway_server(create_app(platform, settings), settings, port=platform.port).run()
