"""users search

Revision ID: a93d0b6c4e18
Revises: f5a2c8e1d307
Create Date: 2026-12-01 19:35:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "a93d0b6c4e18"
down_revision = "f5a2c8e1d307"
branch_labels = None
depends_on = None

# A prefix search (LIKE 'q%') can use a btree only with the pattern operator class on
# PostgreSQL (the database's collation is not C); names are matched lower-cased.
_INDEXES = {
    "ix_users_username_prefix": "username",
    "ix_users_first_name_prefix": "lower(first_name)",
    "ix_users_last_name_prefix": "lower(last_name)",
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, expression in _INDEXES.items():
        opclass = " text_pattern_ops" if postgres else ""
        op.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON users ({expression}{opclass})"))


def downgrade() -> None:
    for name in _INDEXES:
        op.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
