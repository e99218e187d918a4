"""media-service tables: one row per processed image, with its variants' keys."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table

metadata = MetaData()

# A media row's life (`status`, since `status_at`):
#   pending  -> stored; a post may be made of it with the claim signed on the upload. Past
#               the grace the sweeper asks post-service: attached, or deleted (an orphan)
#   attached -> the sweeper saw a live post (`post_id`) hold it (rows from before the
#               sweeper are attached too); only that post's deletion deletes it
#   deleting -> hidden from readers while its objects and then the row are deleted
# (`claimed`, media-service's old lock for a post in the making, is gone: such rows were
# made pending again.)
PENDING, ATTACHED, DELETING = "pending", "attached", "deleting"

media = Table(
    "media",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    Column("content_type", String(40), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("blurhash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    # {"large": {"key": ..., "width": ..., "height": ...}, ...}
    Column("variants", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The post that holds the media, once the sweeper saw it (NULL while pending).
    Column("post_id", BigInteger, nullable=True),
    # When the status last changed (the sweeper's clock).
    Column("status_at", DateTime(timezone=True), nullable=True),
    Index("ix_media_user_id", "user_id", "id"),
    Index("ix_media_post_id", "post_id"),
    Index("ix_media_status_at", "status", "status_at"),
)

# A user's avatar: its square variants ({"thumbnail": {"key", "width", "height"}, ...}),
# replaced whole by a new one; `id` names it in its URLs.
avatars = Table(
    "avatars",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("id", BigInteger, nullable=False, unique=True),
    Column("variants", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
