"""trace context: the traceparent a task or run was submitted under, and a task's last attempt

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Nullable columns added in place on both databases: no SQLite table rebuild, which would
# drop the change triggers of tasks and runs (migrations 0005 and 0006) with the old table.
_COLUMNS = (
    ("tasks", "trace_context"),
    ("tasks", "attempt_context"),
    ("runs", "trace_context"),
)


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.add_column(table, sa.Column(column, sa.String(length=64), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN: PostgreSQL, and SQLite since 3.35, in place.
    for table, column in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
