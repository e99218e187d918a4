"""notifications

Revision ID: c1d2e3f4a5b6
Revises:
Create Date: 2026-12-01 22:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "c1d2e3f4a5b6"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recipient_id", sa.BigInteger(), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("post_id", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("comment_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "recipient_id", "actor_id", "type", "post_id", name="uq_notifications_once"
        ),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_recipient_id_id", ["recipient_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_notifications_unread",
            ["recipient_id"],
            unique=False,
            postgresql_where=sa.text("NOT read"),
            sqlite_where=sa.text("NOT read"),
        )
        batch_op.create_index("ix_notifications_post_id", ["post_id"], unique=False)
        batch_op.create_index("ix_notifications_actor_id", ["actor_id"], unique=False)
    op.create_table(
        "deleted_posts",
        sa.Column("post_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("post_id"),
    )
    with op.batch_alter_table("deleted_posts", schema=None) as batch_op:
        batch_op.create_index("ix_deleted_posts_deleted_at", ["deleted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deleted_posts", schema=None) as batch_op:
        batch_op.drop_index("ix_deleted_posts_deleted_at")
    op.drop_table("deleted_posts")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_actor_id")
        batch_op.drop_index("ix_notifications_post_id")
        batch_op.drop_index("ix_notifications_unread")
        batch_op.drop_index("ix_notifications_recipient_id_id")
    op.drop_table("notifications")
