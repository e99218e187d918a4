"""signed media claims

Revision ID: e5f6a7b8c9d0
Revises: d4e5f6a7b8c9
Create Date: 2026-12-02 02:00:00.000000
"""

from alembic import op

revision = "e5f6a7b8c9d0"
down_revision = "d4e5f6a7b8c9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A post is made of media with the claim signed on their upload, no longer by locking
    # their rows: a row still claimed is pending again, for the sweeper to settle by asking
    # post-service (attached if a live post holds it, deleted otherwise).
    op.execute("UPDATE media SET status = 'pending', post_id = NULL WHERE status = 'claimed'")


def downgrade() -> None:
    # Pending rows are what the previous revision's code expects too.
    pass
