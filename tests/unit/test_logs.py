"""Log lines: JSON for machines, one readable line on a terminal, each naming its service."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from photogram_common.logs import (
    JsonFormatter,
    TextFormatter,
    formatter_for,
    logging_as,
    request_id_var,
)


def record(msg: str = "request", **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("photogram.request", logging.INFO, "", 0, msg, None, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    assert isinstance(formatter_for("gateway", "auto", Terminal()), TextFormatter)
    assert isinstance(formatter_for("gateway", "auto", io.StringIO()), JsonFormatter)
    assert isinstance(formatter_for("gateway", "json", Terminal()), JsonFormatter)
    assert isinstance(formatter_for("gateway", "text", io.StringIO()), TextFormatter)
    with pytest.raises(SystemExit):
        formatter_for("gateway", "yaml", io.StringIO())


def test_json_names_the_service_running_else_the_process() -> None:
    formatter = JsonFormatter("photogram")
    assert json.loads(formatter.format(record()))["service"] == "photogram"
    with logging_as("user-service"):
        line = json.loads(formatter.format(record(status=200)))
        with logging_as("post-service"):
            assert json.loads(formatter.format(record()))["service"] == "post-service"
        assert json.loads(formatter.format(record()))["service"] == "user-service"
    assert line["service"] == "user-service"
    assert line["status"] == 200
    assert json.loads(formatter.format(record()))["service"] == "photogram"


def test_text_is_one_line_time_level_service_message_and_pairs() -> None:
    formatter = TextFormatter("photogram")
    token = request_id_var.set("abc123")
    try:
        with logging_as("gateway"):
            line = formatter.format(record(method="GET", path="/api/feed", status=200, ms=3.5))
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    stamp, level, service, message, *pairs = line.split()
    assert len(stamp) == len("12:34:56.789")
    assert stamp[2] == ":"
    assert (level, service, message) == ("INFO", "gateway", "request")
    assert pairs == ["method=GET", "path=/api/feed", "status=200", "ms=3.5", "request_id=abc123"]


def test_text_quotes_values_with_spaces_and_puts_a_traceback_after() -> None:
    formatter = TextFormatter("photogram")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("could not delete blob", key="a b")
        failed.exc_info = sys.exc_info()
    first, *rest = formatter.format(failed).splitlines()
    assert first.endswith("could not delete blob key='a b'")
    assert rest[0].startswith("Traceback")
    assert rest[-1] == "ValueError: boom"
