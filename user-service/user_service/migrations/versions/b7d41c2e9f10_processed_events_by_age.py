"""processed events by age

Revision ID: b7d41c2e9f10
Revises: dd4ca4b83198
Create Date: 2026-12-01 09:18:40.543688
"""

from alembic import op

revision = "b7d41c2e9f10"
down_revision = "dd4ca4b83198"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The hourly purge of event IDs past the retention walks this index.
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_events_processed_at")
