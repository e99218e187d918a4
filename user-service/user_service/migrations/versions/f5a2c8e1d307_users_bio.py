"""users bio

Revision ID: f5a2c8e1d307
Revises: e41f7a90c2d5
Create Date: 2026-12-01 19:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "f5a2c8e1d307"
down_revision = "e41f7a90c2d5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bio", sa.String(length=150), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("bio")
