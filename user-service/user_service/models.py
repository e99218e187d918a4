"""user-service tables: users, the follow graph (indexed both ways), processed events."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    false,
)

from photogram_common.outbox import outbox_table

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("username", String(30), nullable=False, unique=True),
    Column("email", String(254), nullable=False),
    Column("email_normalized", String(254), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("first_name", String(100), nullable=True),
    Column("last_name", String(100), nullable=True),
    Column("location", String(100), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_active_at", DateTime(timezone=True), nullable=False),
    Column("followers_count", Integer, nullable=False, server_default="0"),
    Column("following_count", Integer, nullable=False, server_default="0"),
    Column("posts_count", Integer, nullable=False, server_default="0"),
    # Delivery: pulled at read time (a celebrity) or pushed to followers. Set when the count
    # reaches the threshold, cleared only at threshold - band or below (service.next_pulled).
    Column("pulled", Boolean, nullable=False, server_default=false()),
    Column("bio", String(150), nullable=False, server_default=""),
    # The avatar as media-service made it (AvatarRead), or NULL.
    Column("avatar", JSON, nullable=True),
)

follows = Table(
    "follows",
    metadata,
    Column("follower_id", BigInteger, nullable=False),
    Column("followee_id", BigInteger, nullable=False),
    # A time-ordered ID per follow: the cursor of "newest follow first" pages.
    Column("id", BigInteger, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("follower_id", "followee_id"),
    Index("ix_follows_followee_id", "followee_id", "id"),
    Index("ix_follows_follower_id", "follower_id", "id"),
    Index("ix_follows_followee_follower", "followee_id", "follower_id"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    # The purge after the retention walks this.
    Index("ix_processed_events_processed_at", "processed_at"),
)

# A login: its refresh tokens are rotated in it; revoked by a logout or a reused token.
sessions = Table(
    "sessions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_sessions_user_id", "user_id"),
)

# Every refresh token a session was given, by the SHA-256 of the token (never the token):
# one unused at a time; a used one presented again reveals a copy and revokes the session.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("session_id", BigInteger, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Index("ix_refresh_tokens_session_id", "session_id"),
)

outbox = outbox_table(metadata)
