"""Examples of the public resources, for the OpenAPI document (/api/docs shows them): one
user, one post with one photo, one comment and the notification it made."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict
from pydantic.config import ExtraValues


def examples(*examples: dict[str, Any], extra: ExtraValues | None = None) -> ConfigDict:
    """A model's config with examples for the OpenAPI document (/api/docs shows them)."""
    config = ConfigDict(json_schema_extra={"examples": list(examples)})
    if extra is not None:
        config["extra"] = extra
    return config


ID, USER_ID, MEDIA_ID = "7258416120135680", "7258416001126400", "7258416118038528"
AT = "2026-11-25T10:00:00.000Z"
AUTHOR = {"user_id": USER_ID, "username": "ana"}
USER = {
    "user_id": USER_ID,
    "username": "ana",
    "first_name": "Ana",
    "last_name": "Lima",
    "location": "Lisbon",
    "created_at": AT,
    "followers_count": 12,
    "following_count": 40,
    "posts_count": 3,
    "bio": "Sunsets and tiles.",
    "avatar": None,
}
USER_ME = {**USER, "email": "ana@example.com"}

NOTIFICATION = {
    "notification_id": "7258416300023808",
    "type": "comment",
    "actor": {"user_id": "7258416050411520", "username": "bob"},
    "post_id": ID,
    "comment_id": "7258416190062592",
    "created_at": AT,
    "read": False,
}


def variant(name: str, width: int, height: int) -> dict[str, Any]:
    return {"url": f"/api/media/{MEDIA_ID}/{name}.jpg", "width": width, "height": height}


MEDIA = {
    "media_id": MEDIA_ID,
    "user_id": USER_ID,
    "content_type": "image/jpeg",
    "width": 3024,
    "height": 4032,
    "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
    "variants": {
        "thumbnail": variant("thumbnail", 150, 150),
        "small": variant("small", 320, 427),
        "medium": variant("medium", 640, 853),
        "large": variant("large", 1080, 1440),
    },
}
POST = {
    "post_id": ID,
    "user_id": USER_ID,
    "author": AUTHOR,
    "caption": "sunset",
    "location": "Lisbon",
    "created_at": AT,
    "media": [MEDIA],
    "likes_count": 2,
    "comments_count": 1,
    "viewer": {"liked": False},
}
COMMENT = {
    "comment_id": "7258416190062592",
    "post_id": ID,
    "author": AUTHOR,
    "text": "What a sky!",
    "created_at": AT,
}
