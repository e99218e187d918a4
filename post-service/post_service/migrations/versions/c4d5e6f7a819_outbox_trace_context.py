"""outbox trace context

Revision ID: c4d5e6f7a819
Revises: b3c4d5e6f708
Create Date: 2026-12-14 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "c4d5e6f7a819"
down_revision = "b3c4d5e6f708"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The W3C traceparent a row was written under (photogram_common.tracing); NULL while
    # tracing is off.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_context", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("trace_context")
