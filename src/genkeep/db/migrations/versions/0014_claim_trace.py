"""prompts.claim_trace: the traceparent of the generation holding a prompt's claim, so a
request in another process that waits for it links its span to the leader's

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, added in place on both databases (no SQLite table rebuild).
    op.add_column("prompts", sa.Column("claim_trace", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN: PostgreSQL, and SQLite since 3.35, in place.
    op.execute("ALTER TABLE prompts DROP COLUMN claim_trace")
