"""idempotency keys

Revision ID: 66ef99bf4614
Revises: 2e9af6c601ea
Create Date: 2026-12-01 10:21:59.433246
"""

import sqlalchemy as sa
from alembic import op

revision = "66ef99bf4614"
down_revision = "2e9af6c601ea"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An upload's Idempotency-Key per user: the first request's hash and the post it made,
    # written in the post's own transaction; purged a day after (post_service/models.py).
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("post_id", sa.BigInteger(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "key"),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_keys_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_created_at")
    op.drop_table("idempotency_keys")
