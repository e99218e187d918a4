"""Log lines carrying the request ID, the trace ID (while tracing is on) and the service that
wrote them: JSON for machines, one readable line for a person at a terminal
(PHOTOGRAM_LOG_FORMAT: auto, json or text)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import orjson

from photogram_common import tracing

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
# The service whose code is running: set per request by each app's request-ID middleware and,
# in the embedded mode, around each service's start and stop, so that one process's lines
# still say which of its services wrote them.
service_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("service", default=None)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
LOG_FORMATS = ("auto", "json", "text")
# Loggers kept to warnings; alembic's plugins log a line each at every start of every service.
_NOISY = ("aiokafka", "botocore", "aiobotocore", "httpx", "httpcore", "alembic.runtime.plugins")


@contextlib.contextmanager
def logging_as(service: str) -> Iterator[None]:
    """Name `service` on the lines logged inside the block (and by tasks it starts)."""
    previous = service_var.get()
    service_var.set(service)
    try:
        yield
    finally:
        # Set back rather than reset: the block may end in another copy of the context.
        service_var.set(previous)


def _extras(record: logging.LogRecord, taken: set[str] | dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RESERVED and key not in taken and not key.startswith("_")
    }


class _Formatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def service_of(self, record: logging.LogRecord) -> str:
        named: str = getattr(record, "service", None) or service_var.get() or self._service
        return named


class JsonFormatter(_Formatter):
    """One JSON object per line: time, level, service, logger, message, request_id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self._second = -1
        self._stamp = ""

    def _time(self, record: logging.LogRecord) -> str:
        # strftime once a second: a busy service logs hundreds of lines in each.
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._time(record),
            "level": record.levelname.lower(),
            "service": self.service_of(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if tracing.ENABLED:
            _add_trace_ids(entry)
        entry |= _extras(record, entry)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(_Formatter):
    """One line a person reads: local time, level, service, message, then key=value extras
    (a traceback, when there is one, on the lines after)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = _extras(record, {"service", "color_message"})
        request_id = request_id_var.get()
        if request_id:
            extras["request_id"] = request_id
        if tracing.ENABLED:
            _add_trace_ids(extras)
        pairs = "".join(f" {key}={_plain(value)}" for key, value in extras.items())
        line = (
            f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} "
            f"{self.service_of(record):<20} {record.getMessage()}{pairs}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _add_trace_ids(fields: dict[str, Any]) -> None:
    """The current span's trace and span IDs, when one is recording."""
    ids = tracing.current_ids()
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids


def _plain(value: object) -> str:
    text = str(value)
    return repr(text) if not text or any(c.isspace() for c in text) else text


def formatter_for(service: str, log_format: str, stream: TextIO) -> logging.Formatter:
    """JSON, text, or (auto) text when `stream` is a terminal and JSON when it is not."""
    if log_format not in LOG_FORMATS:
        raise SystemExit(f"PHOTOGRAM_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    text = log_format == "text" or (log_format == "auto" and stream.isatty())
    return TextFormatter(service) if text else JsonFormatter(service)


def configure_logging(service: str, level: str = "INFO", log_format: str | None = None) -> None:
    """Send every log line of the process to stderr, in PHOTOGRAM_LOG_FORMAT (auto)."""
    chosen = log_format or os.environ.get("PHOTOGRAM_LOG_FORMAT", "auto").strip().lower()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(service, chosen, sys.stderr))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # What no line carries: the caller's frame (a stack walk per line), threads, processes.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The access log duplicates our own request line, which carries the request ID.
    logging.getLogger("uvicorn.access").disabled = True
