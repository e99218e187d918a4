"""Who is calling, as every service sees it once a token is verified
(photogram_common.identity verifies and issues the tokens)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    user_id: int
    username: str
    # The session an access token was issued in (0: none, as for a service or an
    # internal token); logging out or a reused refresh token revokes it (docs/api.md).
    session_id: int = 0
