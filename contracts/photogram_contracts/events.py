"""Event contracts: versioned, frozen, past-tense; one topic per aggregate."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

POSTS_TOPIC = "photogram.posts.v1"
FOLLOWS_TOPIC = "photogram.follows.v1"
ENGAGEMENT_TOPIC = "photogram.engagement.v1"
ALL_TOPICS = (POSTS_TOPIC, FOLLOWS_TOPIC, ENGAGEMENT_TOPIC)


class Event(BaseModel):
    """Base of every event: its type name, topic and partition key."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type_name: ClassVar[str]
    topic: ClassVar[str]
    version: ClassVar[int] = 1

    def key(self) -> str:
        raise NotImplementedError


class _PostEvent(Event):
    """A post's life: keyed by author, so one author's events stay in order."""

    topic = POSTS_TOPIC
    post_id: int
    author_id: int

    def key(self) -> str:
        return str(self.author_id)


class PostCreated(_PostEvent):
    type_name = "post.created"


class PostDeleted(_PostEvent):
    type_name = "post.deleted"
    # The post's media, for media-service to delete (empty in events from before it).
    media_ids: list[int] = Field(default_factory=list)


Crossing = Literal["up", "down"]


class _FollowEvent(Event):
    """A change of the graph, keyed by follower; carries the followee's new follower count
    and delivery state, both as user-service wrote them in the change's transaction."""

    topic = FOLLOWS_TOPIC
    follower_id: int
    followee_id: int
    followee_followers_count: int
    # Whether the followee is pulled (read at read time) after this change: user-service's
    # flag, with hysteresis (docs/decisions.md). None in events written before it kept one.
    followee_pulled: bool | None = None
    # "up" when this change made the followee pulled, "down" when it made them pushed again.
    followee_crossed: Crossing | None = None

    def key(self) -> str:
        return str(self.follower_id)


class FollowCreated(_FollowEvent):
    type_name = "follow.created"


class FollowDeleted(_FollowEvent):
    type_name = "follow.deleted"


class UserDeleted(Event):
    """An account was deleted: its follows went in the same transaction (each with its
    follow.deleted, before this); its posts, likes, comments and notifications go by this
    event. On the follows topic, keyed as the account's own follow changes, so it comes
    after them."""

    topic = FOLLOWS_TOPIC
    user_id: int
    type_name = "user.deleted"

    def key(self) -> str:
        return str(self.user_id)


class _EngagementEvent(Event):
    """A like or a comment: keyed by post, so one post's events stay in order. Carries the
    post's counts as post-service wrote them in the change's transaction, with their
    version (it grows by one per change), so a reader keeps the newest whatever the order
    in which it meets them."""

    topic = ENGAGEMENT_TOPIC
    post_id: int
    # The post's author, and who liked or commented.
    author_id: int
    user_id: int
    likes_count: int
    comments_count: int
    counts_version: int

    def key(self) -> str:
        return str(self.post_id)


class LikeCreated(_EngagementEvent):
    type_name = "like.created"


class LikeDeleted(_EngagementEvent):
    type_name = "like.deleted"


class CommentCreated(_EngagementEvent):
    type_name = "comment.created"
    comment_id: int


class CommentDeleted(_EngagementEvent):
    type_name = "comment.deleted"
    comment_id: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type_name: cls
    for cls in (
        PostCreated,
        PostDeleted,
        FollowCreated,
        FollowDeleted,
        UserDeleted,
        LikeCreated,
        LikeDeleted,
        CommentCreated,
        CommentDeleted,
    )
}


@dataclass(frozen=True)
class Envelope:
    """An event as it travels: a unique ID for deduplication, its type and version."""

    event_id: str
    event: Event

    @classmethod
    def wrap(cls, event: Event) -> Envelope:
        return cls(event_id=uuid.uuid4().hex, event=event)

    def encode(self) -> bytes:
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.event.type_name,
            "version": self.event.version,
            "data": self.event.model_dump(),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Envelope | None:
        """Parse an envelope; None for a type this code does not know (skipped, not fatal)."""
        body = json.loads(raw)
        event_type = EVENT_TYPES.get(body.get("type", ""))
        if event_type is None:
            return None
        return cls(event_id=body["event_id"], event=event_type.model_validate(body["data"]))
