"""users by followers

Revision ID: c9d0e1f2a3b4
Revises: b8c9d0e1f2a3
Create Date: 2026-12-02 01:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "c9d0e1f2a3b4"
down_revision = "b8c9d0e1f2a3"
branch_labels = None
depends_on = None

# The search's order (most followed first, then by ID) as an index: a one- or two-letter
# prefix walks it from the top instead of sorting the tens of thousands of users it matches.
_INDEX = "ix_users_followers_count"


def upgrade() -> None:
    op.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {_INDEX} ON users (followers_count DESC, id)"))


def downgrade() -> None:
    op.execute(sa.text(f"DROP INDEX IF EXISTS {_INDEX}"))
