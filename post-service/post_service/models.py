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
