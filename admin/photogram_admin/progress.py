"""A small progress bar on stderr: redrawn in place on a terminal, a line now and then if not."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
TERMINAL_EVERY_SECONDS = 0.1
LOG_EVERY_SECONDS = 5.0


class Progress:
    """Counts done items out of `total` and shows the rate; `close` prints the last state."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._terminal = self._stream.isatty()
        self._started = time.monotonic()
        self._shown = 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        every = TERMINAL_EVERY_SECONDS if self._terminal else LOG_EVERY_SECONDS
        if now - self._shown >= every:
            self._shown = now
            self._show()

    def close(self) -> None:
        self._show()
        if self._terminal:
            self._stream.write("\n")
        self._stream.flush()

    def _show(self) -> None:
        share = self.done / self.total if self.total else 1.0
        filled = int(WIDTH * min(share, 1.0))
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        line = (
            f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] "
            f"{self.done}/{self.total} {share:6.1%} {rate:,.0f}/s {self.elapsed:,.1f} s"
        )
        self._stream.write(f"\r{line}" if self._terminal else f"{line}\n")
        self._stream.flush()
