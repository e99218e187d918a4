"""`python -m photogram_runner` runs the embedded mode; `up`/`down`/`status` the distributed one."""

from __future__ import annotations

import sys

import uvloop

from photogram_common.logs import configure_logging
from photogram_common.settings import PlatformSettings, resolve_secrets


async def _embedded() -> None:
    from gateway.serving import gateway_server
    from gateway.settings import GatewaySettings
    from photogram_runner.embedded import compose, running

    platform = resolve_secrets(PlatformSettings())
    async with running(compose(platform)) as system:
        server = gateway_server(system.gateway, GatewaySettings(), port=platform.port)
        await server.serve()


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "embedded"
    if command == "embedded":
        configure_logging("photogram")
        # The loop uvicorn picks for a service process (uvloop), here too.
        uvloop.run(_embedded())
        return
    from photogram_runner import distributed

    configure_logging("photogram-runner")
    distributed.main(command)


if __name__ == "__main__":
    main()
