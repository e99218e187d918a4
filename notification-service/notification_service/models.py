"""notification-service tables: notifications, and the posts known to be deleted."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# One row per (recipient, actor, type, post): liking, unliking and liking again leaves one.
# `post_id` is 0 for a follow.
notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("recipient_id", BigInteger, nullable=False),
    Column("actor_id", BigInteger, nullable=False),
    Column("type", String(16), nullable=False),
    Column("post_id", BigInteger, nullable=False, server_default=text("0")),
    Column("comment_id", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("recipient_id", "actor_id", "type", "post_id", name="uq_notifications_once"),
    Index("ix_notifications_recipient_id_id", "recipient_id", "id"),
    Index(
        "ix_notifications_unread",
        "recipient_id",
        postgresql_where=text("NOT read"),
        sqlite_where=text("NOT read"),
    ),
    Index("ix_notifications_post_id", "post_id"),
    Index("ix_notifications_actor_id", "actor_id"),
)

deleted_posts = Table(
    "deleted_posts",
    metadata,
    Column("post_id", BigInteger, primary_key=True, autoincrement=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
    Index("ix_deleted_posts_deleted_at", "deleted_at"),
)
