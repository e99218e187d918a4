"""likes and comments

Revision ID: b3c4d5e6f708
Revises: 66ef99bf4614
Create Date: 2026-12-01 22:15:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "b3c4d5e6f708"
down_revision = "66ef99bf4614"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Constant defaults: on PostgreSQL adding them rewrites no row.
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("likes_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("comments_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "counts_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )
    op.create_table(
        "likes",
        sa.Column("post_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("post_id", "user_id"),
    )
    with op.batch_alter_table("likes", schema=None) as batch_op:
        batch_op.create_index("ix_likes_post_id_id", ["post_id", "id"], unique=False)
        batch_op.create_index("ix_likes_user_id_post_id", ["user_id", "post_id"], unique=False)
    op.create_table(
        "comments",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("post_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("author_username", sa.String(length=30), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.create_index("ix_comments_post_id_id", ["post_id", "id"], unique=False)
        batch_op.create_index("ix_comments_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_index("ix_comments_user_id")
        batch_op.drop_index("ix_comments_post_id_id")
    op.drop_table("comments")
    with op.batch_alter_table("likes", schema=None) as batch_op:
        batch_op.drop_index("ix_likes_user_id_post_id")
        batch_op.drop_index("ix_likes_post_id_id")
    op.drop_table("likes")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_column("counts_version")
        batch_op.drop_column("comments_count")
        batch_op.drop_column("likes_count")
