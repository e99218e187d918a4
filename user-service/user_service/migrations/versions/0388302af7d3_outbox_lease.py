"""outbox lease

Revision ID: 0388302af7d3
Revises: b7d41c2e9f10
Create Date: 2026-12-01 09:20:12.104377
"""

import sqlalchemy as sa
from alembic import op

revision = "0388302af7d3"
down_revision = "b7d41c2e9f10"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A relay's claim on a batch it is sending (OutboxRelay): set, then cleared when sent.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
