"""The distributed mode on one machine: each service its own process, on the real backends.

`up` migrates the four databases, starts the seven processes on loopback and waits for
each to be ready; `down` stops them; `status` reports them. The backends themselves are
started by scripts/backends.sh (make up runs both).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from photogram_runner.console import base_url, ready_line

SERVICES = {
    # name: (module, env prefix of its host/port, port)
    "user-service": ("user_service", "PHOTOGRAM_USERS", 8101),
    "post-service": ("post_service", "PHOTOGRAM_POSTS", 8102),
    "media-service": ("media_service", "PHOTOGRAM_MEDIA", 8103),
    "feed-service": ("feed_service", "PHOTOGRAM_FEED", 8104),
    "fanout-worker": ("fanout_worker", "PHOTOGRAM_FANOUT", 8105),
    "notification-service": ("notification_service", "PHOTOGRAM_NOTIFICATIONS", 8106),
}
MIGRATED = ("user-service", "post-service", "media-service", "notification-service")
REQUIRED = (
    "PHOTOGRAM_USERS_DATABASE_URL",
    "PHOTOGRAM_REDIS_URL",
    "PHOTOGRAM_KAFKA_BOOTSTRAP",
    "PHOTOGRAM_S3_BUCKET",
)


def _run_dir() -> Path:
    base = Path(os.environ.get("PHOTOGRAM_BACKENDS_DIR", ".backends"))
    path = base / "services"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret(run: Path, name: str) -> str:
    path = run / f".{name}"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _environment(run: Path) -> dict[str, str]:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        raise SystemExit(f'missing {", ".join(missing)}: eval "$(bash scripts/backends.sh env)"')
    env = dict(os.environ)
    env.setdefault("PHOTOGRAM_JWT_SECRET", _secret(run, "jwt_secret"))
    env.setdefault("PHOTOGRAM_INTERNAL_SECRET", _secret(run, "internal_secret"))
    env["PHOTOGRAM_MODE"] = "distributed"
    for name, (_, prefix, port) in SERVICES.items():
        url_var = f"PHOTOGRAM_{name.upper().replace('-', '_')}_URL"
        env.setdefault(url_var, f"http://127.0.0.1:{port}")
        env.setdefault(f"{prefix}_PORT", str(port))
    return env


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_ready(name: str, url: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ready(url):
            print(f"[up] {name} ready at {url.removesuffix('/readyz')}")
            return
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log.exists() else ""
    raise SystemExit(f"{name} did not become ready within {timeout:.0f} s:\n{tail}")


def up() -> None:
    run = _run_dir()
    env = _environment(run)
    for name in MIGRATED:
        module = SERVICES[name][0]
        print(f"[up] migrating {name}")
        subprocess.run([sys.executable, "-m", module, "migrate"], env=env, check=True)  # noqa: S603
    processes = [(name, module, port) for name, (module, _, port) in SERVICES.items()]
    processes.append(("gateway", "gateway", int(env.get("PHOTOGRAM_PORT", "8000"))))
    for name, module, port in processes:
        pid_file = run / f"{name}.pid"
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            print(f"[up] {name} already running")
            continue
        log = run / f"{name}.log"
        with log.open("ab") as out:
            child = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", module],
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        pid_file.write_text(str(child.pid))
        _wait_ready(name, f"http://127.0.0.1:{port}/readyz", log)
    print(ready_line(base_url("127.0.0.1", int(env.get("PHOTOGRAM_PORT", "8000")))), flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def down() -> None:
    run = _run_dir()
    for pid_file in sorted(run.glob("*.pid")):
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 25
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        print(f"[down] {pid_file.stem} stopped")
        pid_file.unlink()


def status() -> None:
    run = _run_dir()
    up_count = 0
    for name in [*SERVICES, "gateway"]:
        pid_file = run / f"{name}.pid"
        alive = pid_file.exists() and _alive(int(pid_file.read_text()))
        up_count += alive
        print(f"{name}: {'up' if alive else 'down'}")
    if up_count != len(SERVICES) + 1:
        raise SystemExit(1)


def main(command: str) -> None:
    commands = {"up": up, "down": down, "status": status}
    if command not in commands:
        raise SystemExit("usage: python -m photogram_runner [embedded|up|down|status]")
    commands[command]()
