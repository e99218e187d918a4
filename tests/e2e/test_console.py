"""`make run` as a person meets it: one plain line saying where to go once it is ready, log
lines naming the service that wrote them, and Ctrl-C a clean exit (0, no traceback), even
while it is still starting."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx

# It starts the embedded mode whatever the run's backends: only the embedded run collects it
# (tests/conftest.py).


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Runner:
    """`python -m photogram_runner` on a port and data directory of its own, its output read
    as it comes."""

    def __init__(self, data_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOGRAM_")}
        env.update({"PHOTOGRAM_DATA_DIR": str(data_dir), "PHOTOGRAM_PORT": str(port)})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "photogram_runner"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        for name, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            assert stream is not None
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put((name, line.rstrip("\n")))

    def wait_for(self, stream: str, start: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                name, line = self._lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, "\n".join(self.stderr[-20:])
                continue
            (self.stdout if name == "stdout" else self.stderr).append(line)
            if name == stream and line.startswith(start):
                return line
        raise AssertionError(f"no {stream} line starting {start!r} within {timeout} s")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = self.process.wait(timeout=30)
        time.sleep(0.2)  # the readers' last lines
        while not self._lines.empty():
            name, line = self._lines.get()
            (self.stdout if name == "stdout" else self.stderr).append(line)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_ready_line_then_ctrl_c_exits_0(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runner = Runner(tmp_path / "data", port)
    try:
        ready = runner.wait_for("stdout", "Photogram is ready")
        assert ready == f"Photogram is ready: web {base}/  API docs {base}/api/docs"
        assert httpx.get(f"{base}/api/docs").status_code == 200
        assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
        code = runner.interrupt()
    finally:
        runner.kill()
    assert code == 0
    output = "\n".join(runner.stdout + runner.stderr)
    assert "Traceback" not in output
    assert [line for line in runner.stdout if line] == [ready]
    # Not a terminal: JSON, one object per line, each naming the service that wrote it.
    lines = [json.loads(line) for line in runner.stderr if line]
    services = {line["service"] for line in lines}
    assert {"gateway", "user-service", "post-service", "media-service"} <= services, services
    requests = {(line["service"], line["path"]) for line in lines if line["msg"] == "request"}
    assert ("gateway", "/api/docs") in requests, requests


def test_ctrl_c_while_starting_exits_0(tmp_path: Path) -> None:
    runner = Runner(tmp_path / "data", free_port())
    try:
        # The services are migrating their databases.
        runner.wait_for("stderr", "{")
        code = runner.interrupt()
    finally:
        runner.kill()
    assert code == 0
    assert "Traceback" not in "\n".join(runner.stdout + runner.stderr)
    assert not any(line.startswith("Photogram is ready") for line in runner.stdout)
