"""media claims and sweeping

Revision ID: 4afd0b109256
Revises: b97828eb1656
Create Date: 2026-12-01 10:19:24.482655
"""

import sqlalchemy as sa
from alembic import op

revision = "4afd0b109256"
down_revision = "b97828eb1656"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The post that claimed a media row, and when its status last changed (the sweeper's
    # clock); see media_service/models.py for the statuses.
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("post_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("status_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_media_post_id", ["post_id"], unique=False)
        batch_op.create_index("ix_media_status_at", ["status", "status_at"], unique=False)
    # Rows from before claims: which post shows them is post-service's to know, so they are
    # taken as attached (never swept); a post's deletion names its media in its event.
    op.execute("UPDATE media SET status = 'attached', status_at = created_at")


def downgrade() -> None:
    op.execute("UPDATE media SET status = 'ready'")
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index("ix_media_status_at")
        batch_op.drop_index("ix_media_post_id")
        batch_op.drop_column("status_at")
        batch_op.drop_column("post_id")
