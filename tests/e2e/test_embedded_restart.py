"""`make run`: ready with all six services, Ctrl-C stops it cleanly, a restart keeps data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from helpers import tiny_jpeg


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    # Only the embedded mode's own variables: no real backend is named.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOGRAM_")}
    env.update({"PHOTOGRAM_DATA_DIR": str(data_dir), "PHOTOGRAM_PORT": str(port)})
    return subprocess.Popen(
        [sys.executable, "-m", "photogram_runner"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        try:
            response = httpx.get(f"{base}/readyz", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the embedded system did not become ready")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    return process.wait(timeout=30)


def test_ready_then_ctrl_c_then_restart_keeps_every_row_and_file(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start(tmp_path / "data", port)
    try:
        ready = wait_ready(base, process)
        services = {
            "user-service",
            "post-service",
            "media-service",
            "feed-service",
            "fanout-worker",
        }
        assert services <= set(ready["checks"])
        assert set(ready["checks"].values()) == {"ok"}
        signup = httpx.post(
            f"{base}/api/auth/signup",
            json={"username": "ana", "email": "ana@example.com", "password": "correct horse"},
        )
        assert signup.status_code == 201
        headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        upload = httpx.post(
            f"{base}/api/upload",
            headers=headers,
            data={"caption": "kept"},
            files=[("file", ("a.jpg", tiny_jpeg(), "image/jpeg"))],
            timeout=30,
        )
        assert upload.status_code == 201, upload.text
        post = upload.json()
        thumbnail = post["media"][0]["variants"]["thumbnail"]["url"]
    finally:
        code = stop(process)
    assert code == 0

    process = start(tmp_path / "data", port)
    try:
        wait_ready(base, process)
        login = httpx.post(
            f"{base}/api/auth/login", json={"login": "ana", "password": "correct horse"}
        )
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        again = httpx.get(f"{base}/api/post/{post['post_id']}", headers=headers)
        assert again.status_code == 200
        assert again.json()["caption"] == "kept"
        image = httpx.get(f"{base}{thumbnail}")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg"
        feed = httpx.get(f"{base}/api/feed", headers=headers).json()
        assert [item["post_id"] for item in feed["items"]] == [post["post_id"]]
    finally:
        assert stop(process) == 0
