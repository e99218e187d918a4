"""The web client's browser tests: the embedded system as a real HTTP server, driven by
Debian's Chromium through Playwright (`make test-web`; not part of `make test`).

PHOTOGRAM_CHROMIUM names the browser (default /usr/bin/chromium); a missing one is an
error, never a skip. PHOTOGRAM_SCREENSHOTS names a folder for screenshots of the main
screens at phone and desktop widths (none are taken without it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

# The widths people use: a phone's and a laptop's.
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
READY_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(
        f"the server was not ready in {READY_SECONDS} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m photogram_runner` (what `make run` starts) on a free port and a fresh
    data directory; its output goes to a file, shown when it fails to start."""
    folder = tmp_path_factory.mktemp("photogram")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOGRAM_")}
    env |= {
        "PHOTOGRAM_DATA_DIR": str(folder / "data"),
        "PHOTOGRAM_PORT": str(port),
        "PHOTOGRAM_RATE_LIMIT_PER_MINUTE": "0",
    }
    log = folder / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "photogram_runner"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, process, log)
            yield base
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = Path(os.environ.get("PHOTOGRAM_CHROMIUM", "/usr/bin/chromium"))
    if not executable.is_file():
        raise RuntimeError(
            f"no Chromium at {executable}: `apt-get install chromium`, or set PHOTOGRAM_CHROMIUM"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable))
        yield launched
        launched.close()


@pytest.fixture
def new_context(browser: Browser, base_url: str) -> Iterator[Callable[..., BrowserContext]]:
    """Make a browser context (one person, with storage of their own) at a viewport of
    VIEWPORTS. An uncaught script error or a Content-Security-Policy refusal in any of its
    pages fails the test."""
    made: list[BrowserContext] = []
    faults: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            faults.append(message.text)

    def make(viewport: str) -> BrowserContext:
        context = browser.new_context(
            base_url=base_url, viewport=VIEWPORTS[viewport], locale="en-US", timezone_id="UTC"
        )
        context.set_default_timeout(10_000)
        context.on("weberror", lambda error: faults.append(str(error.error)))
        context.on("console", on_console)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
    assert not faults, faults


@pytest.fixture(scope="session")
def shoot() -> Callable[[Page, str], None]:
    """Save a screenshot of the page at phone and desktop widths, when asked to."""
    folder = os.environ.get("PHOTOGRAM_SCREENSHOTS")

    def screenshot(page: Page, name: str) -> None:
        if not folder:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        size = page.viewport_size
        for label, viewport in VIEWPORTS.items():
            page.set_viewport_size(viewport)
            # Each photo in view has loaded (not the lazy ones further down).
            page.wait_for_function(
                "() => Array.from(document.images).every(i => i.complete"
                " || i.getBoundingClientRect().top > innerHeight)"
            )
            page.screenshot(path=f"{folder}/{name}-{label}.png", animations="disabled")
        if size:
            page.set_viewport_size(size)

    return screenshot
