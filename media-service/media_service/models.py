"""media-service tables: one row per processed image, with its variants' keys."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table

metadata = MetaData()

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
    Index("ix_media_user_id", "user_id", "id"),
)
