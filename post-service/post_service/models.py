"""post-service tables: posts, their ordered media, the outbox."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from photogram_common.outbox import outbox_table

metadata = MetaData()

posts = Table(
    "posts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    # Usernames never change, so the author's name is kept with the post for hydration.
    Column("author_username", String(30), nullable=False),
    Column("caption", Text, nullable=True),
    Column("location", String(100), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    # Kept by the like and comment writes in their transactions; the version grows by one
    # per change, so readers of the counts' events keep the newest (docs/decisions.md).
    Column("likes_count", Integer, nullable=False, server_default=text("0")),
    Column("comments_count", Integer, nullable=False, server_default=text("0")),
    Column("counts_version", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_posts_user_id_id", "user_id", "id"),
    Index("ix_posts_live_user", "user_id", "id", postgresql_where=text("deleted_at IS NULL")),
)

post_media = Table(
    "post_media",
    metadata,
    Column("post_id", BigInteger, ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("media_id", BigInteger, nullable=False, unique=True),
    # Media are immutable once processed: the post keeps the public view it was made with.
    Column("media", JSON, nullable=False),
)

# One row per (post, user) who likes it; `id` orders a post's likes, newest first.
likes = Table(
    "likes",
    metadata,
    Column("post_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_likes_post_id_id", "post_id", "id"),
    # A reader's likes (viewer.liked for a page, the feed's liked set, account deletion).
    Index("ix_likes_user_id_post_id", "user_id", "post_id"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("post_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("author_username", String(30), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_comments_post_id_id", "post_id", "id"),
    Index("ix_comments_user_id", "user_id"),
)

# A client's Idempotency-Key for an upload, kept a day: the first request's hash and its
# answer, replayed to a retry with the same key and body (docs/api.md, "Idempotent uploads").
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("post_id", BigInteger, nullable=False),
    # The post as the first answer gave it.
    Column("response", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

outbox = outbox_table(metadata)
