"""The admin command line refuses settings it cannot run with in one line per field."""

from __future__ import annotations

import pytest

from photogram_admin.cli import main


def test_a_missing_secret_outside_the_embedded_mode_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PHOTOGRAM_MODE", "distributed")
    monkeypatch.setenv("PHOTOGRAM_JWT_SECRET", "")
    assert main(["status"]) == 2
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "photogram-admin status: the settings (PlatformSettings) are not valid:" in said
    assert "PHOTOGRAM_JWT_SECRET must be set" in said
    assert "Traceback" not in said
    assert "errors.pydantic.dev" not in said
