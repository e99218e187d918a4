"""Where each piece of shared state lives in Redis: the key layouts every service that
reads or writes it agrees on.

Each key of one reader (or one post) carries a hash tag, `{...}`, so that on Redis Cluster
the keys a script touches together share a slot.
"""

from __future__ import annotations


# Timelines and their companions (photogram_common.timelines, photogram_common.follows).
def timeline_key(user_id: int) -> str:
    return f"tl2:{{{user_id}}}"


def recent_key(author_id: int) -> str:
    return f"rp2:{{{author_id}}}"


def rebuild_lock_key(key: str) -> str:
    return f"lock:{key}"


def followees_key(user_id: int) -> str:
    """The set of accounts a reader follows (see photogram_common.follows)."""
    return f"fl:{{{user_id}}}"


def pulled_key(user_id: int) -> str:
    """The set of a reader's followees who are pulled at read time (celebrities)."""
    return f"pf:{{{user_id}}}"


def seen_key(user_id: int) -> str:
    """Throttles the reader's last-active updates; shares the timeline's slot."""
    return f"seen:{{{user_id}}}"


def post_cache_key(post_id: int) -> str:
    """A post's public JSON as bytes; an empty value marks a deleted post."""
    return f"post:{{{post_id}}}"


# A post's counts and the posts a reader likes (photogram_common.engagement_cache).
def counts_key(post_id: int) -> str:
    return f"pe:{{{post_id}}}"


def liked_key(user_id: int) -> str:
    return f"lk:{{{user_id}}}"


def liked_floor_key(user_id: int) -> str:
    return f"lkf:{{{user_id}}}"


# Sessions ended before their access tokens expire (photogram_common.sessions), marked
# under the rate limit's subject so the gateway reads both in one script call.
def rate_subject(user_id: int) -> str:
    return f"u:{user_id}"


def revoked_key(user_id: int, session_id: int) -> str:
    return f"rv:{{{rate_subject(user_id)}}}:{session_id}"
