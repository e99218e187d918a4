"""outbox lease

Revision ID: 2e9af6c601ea
Revises: 4faf4926d7ae
Create Date: 2026-12-01 09:18:47.779672
"""

import sqlalchemy as sa
from alembic import op

revision = "2e9af6c601ea"
down_revision = "4faf4926d7ae"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A relay's claim on a batch it is sending (OutboxRelay): set, then cleared when sent.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
