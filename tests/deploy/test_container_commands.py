"""Each service's container command starts that service in the distributed mode.

The commands are read from the Dockerfile (each target's CMD) and docker-compose.yml (the
`... migrate` commands), never repeated here. They run as local processes against the
real backends of scripts/backends.sh, on loopback and free ports: the migrations first,
then the seven services; each must answer /readyz with 200 and exit cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .deploy_files import ROOT, SERVICES, ServiceImage, dockerfile_images, migrate_commands

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        os.environ.get("PHOTOGRAM_TEST_BACKENDS") != "real",
        reason="needs the real backends: PHOTOGRAM_TEST_BACKENDS=real, scripts/backends.sh start",
    ),
]

READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 45
SERVICE_URL_VARIABLES = {
    "user-service": "PHOTOGRAM_USER_SERVICE_URL",
    "post-service": "PHOTOGRAM_POST_SERVICE_URL",
    "media-service": "PHOTOGRAM_MEDIA_SERVICE_URL",
    "feed-service": "PHOTOGRAM_FEED_SERVICE_URL",
    "fanout-worker": "PHOTOGRAM_FANOUT_WORKER_URL",
    "notification-service": "PHOTOGRAM_NOTIFICATION_SERVICE_URL",
}


def backend_env() -> dict[str, str]:
    """The export lines of `scripts/backends.sh env`, as a dict."""
    output = subprocess.run(  # noqa: S603
        ["bash", str(ROOT / "scripts" / "backends.sh"), "env"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    env = {}
    for line in output.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_argv(command: list[str]) -> list[str]:
    """The image's command with `python` meaning this virtualenv's interpreter."""
    return [sys.executable if command[0] == "python" else command[0], *command[1:]]


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def distributed_env(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    images = dockerfile_images()
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOGRAM_")}
    env.update(backend_env())
    env.update(
        {
            "PHOTOGRAM_MODE": "distributed",
            "PHOTOGRAM_DATA_DIR": str(tmp_path / "data"),
            "PHOTOGRAM_JWT_SECRET": secrets.token_urlsafe(48),
            "PHOTOGRAM_INTERNAL_SECRET": secrets.token_urlsafe(48),
        }
    )
    for name in SERVICES:
        image = images[name]
        env[image.host_variable] = "127.0.0.1"
        env[image.port_variable] = str(ports[name])
    for name, variable in SERVICE_URL_VARIABLES.items():
        env[variable] = f"http://127.0.0.1:{ports[name]}"
    return env, ports


def test_migrate_then_serve_then_stop(
    distributed_env: tuple[dict[str, str], dict[str, int]], tmp_path: Path
) -> None:
    env, ports = distributed_env
    for target, command in migrate_commands().items():
        result = subprocess.run(  # noqa: S603
            local_argv(command),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, f"{target} migrate failed:\n{result.stderr[-3000:]}"

    images: dict[str, ServiceImage] = dockerfile_images()
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for name in SERVICES:
            log = tmp_path / f"{name}.log"
            with log.open("wb") as sink:
                processes[name] = (
                    subprocess.Popen(  # noqa: S603
                        local_argv(images[name].command),
                        env=env,
                        cwd=tmp_path,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                    ),
                    log,
                )
        waiting = set(SERVICES)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                process, log = processes[name]
                assert process.poll() is None, f"{name} exited early:\n{tail(log)}"
                if status_of(f"http://127.0.0.1:{ports[name]}/readyz") == 200:
                    waiting.discard(name)
            time.sleep(0.5)
        assert not waiting, "not ready in time: " + "; ".join(
            f"{n}:\n{tail(processes[n][1])}" for n in sorted(waiting)
        )
        for name in SERVICES:
            assert status_of(f"http://127.0.0.1:{ports[name]}/healthz") == 200, name
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        exit_codes = {}
        for name, (process, _log) in processes.items():
            try:
                exit_codes[name] = process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                exit_codes[name] = f"still running {STOP_TIMEOUT_S}s after SIGTERM"
    unclean = {n: c for n, c in exit_codes.items() if c != 0}
    assert not unclean, "unclean exits: " + "; ".join(
        f"{n} ({c}):\n{tail(processes[n][1])}" for n, c in unclean.items()
    )
