"""users pulled

Revision ID: c708a27da7f9
Revises: 0388302af7d3
Create Date: 2026-12-01 10:10:23.536534
"""

import os

import sqlalchemy as sa
from alembic import op

revision = "c708a27da7f9"
down_revision = "0388302af7d3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Whether an author is pulled at read time (docs/decisions.md, "Crossing the celebrity
    # threshold"); a constant default, so PostgreSQL adds it without rewriting the table.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pulled", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Existing authors keep the delivery the count gave them until now: pulled at or above
    # the threshold the services run with (the job gets the same PHOTOGRAM_* settings).
    threshold = int(os.environ.get("PHOTOGRAM_CELEBRITY_THRESHOLD", "10000"))
    users = sa.table("users", sa.column("followers_count", sa.Integer), sa.column("pulled"))
    op.execute(users.update().where(users.c.followers_count >= threshold).values(pulled=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("pulled")
