"""results.details: what an OpenAI-compatible answer says beside its text (finish reason,
tool calls, reasoning, usage details, system fingerprint), as JSON, replayed on hits

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column with no default: both databases add it in place, no table rebuild.
    op.add_column("results", sa.Column("details", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.drop_column("details")
