"""`python -m photogram_runner` runs the embedded mode; `up`/`down`/`status` the distributed one."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import uvloop

from photogram_common.logs import configure_logging, logging_as
from photogram_common.tracing import configure_tracing


async def _embedded() -> None:
    # First, so that a Ctrl-C from now on is a clean stop, whatever is starting.
    from photogram_runner.embedded import StopRequests

    stop = StopRequests(asyncio.current_task())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)

    from gateway.serving import gateway_server
    from gateway.settings import GatewaySettings
    from photogram_common.settings import PlatformSettings, resolve_secrets
    from photogram_runner.embedded import EmbeddedServer, compose, running

    platform = resolve_secrets(PlatformSettings())
    async with running(compose(platform)) as system:
        if stop.asked:
            stop.stopping = True
            return
        server = gateway_server(
            system.gateway, GatewaySettings(), port=platform.port, server_class=EmbeddedServer
        )
        stop.server = server
        try:
            with logging_as("gateway"):
                await server.serve()
        finally:
            stop.server, stop.stopping = None, True


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "embedded"
    if command == "embedded":
        configure_logging("photogram")
        # One resource for the process; each span names its service (photogram.service).
        configure_tracing("photogram")
        # Stopped before the signal handlers were in place, or a second time while starting:
        # a stop asked for is a clean exit, with nothing to add.
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            # The loop uvicorn picks for a service process (uvloop), here too.
            uvloop.run(_embedded())
        return
    from photogram_runner import distributed

    configure_logging("photogram-runner")
    distributed.main(command)


if __name__ == "__main__":
    main()
