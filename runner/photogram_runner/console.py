"""What the runner tells the person who started it: where to go once Photogram is ready."""

from __future__ import annotations

# Bound to every address: a browser on this machine reaches it on loopback.
_UNSPECIFIED = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def base_url(host: str, port: int) -> str:
    """The gateway's URL for a browser on this machine."""
    host = _UNSPECIFIED.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def ready_line(base: str) -> str:
    """One plain line: the web client's URL and the API docs' URL."""
    return f"Photogram is ready: web {base}/  API docs {base}/api/docs"
