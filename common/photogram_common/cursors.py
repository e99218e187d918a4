"""Opaque page cursors: URL-safe base64 of a small JSON list, checked on the way in."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from photogram_common.problems import Problem

# Ours are a few dozen characters; anything much longer is not one, and is refused before it
# is decoded (a deeply nested JSON list would otherwise exhaust the parser's recursion).
MAX_CURSOR_CHARS = 256


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, arity: int) -> list[Any]:
    """Decode a cursor of `arity` integers; a malformed one is a 400."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise Problem(400, "The cursor is malformed.", title="Bad cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeError, RecursionError) as exc:
        raise Problem(400, "The cursor is malformed.", title="Bad cursor") from exc
    if (
        not isinstance(parts, list)
        or len(parts) != arity
        or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 1 << 63 for p in parts
        )
    ):
        raise Problem(400, "The cursor is malformed.", title="Bad cursor")
    return parts
