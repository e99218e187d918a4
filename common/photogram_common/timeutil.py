"""Timestamps as the public API writes them: RFC 3339, UTC, milliseconds, a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def to_rfc3339(moment: datetime) -> str:
    """Format a datetime as 2026-11-25T10:00:00.000Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def from_unix_ms(unix_ms: int) -> datetime:
    """Return the UTC datetime of a Unix millisecond."""
    return datetime.fromtimestamp(unix_ms / 1000, tz=UTC)
