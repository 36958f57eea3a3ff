"""cost control: cached input tokens in the ledger; the API key a task was submitted with

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Added in place on SQLite (no table rebuild: the tasks triggers of 0005 stay as they are).
# ``usage_entries.cached_tokens``: the prompt tokens the provider served from its cache
# (priced at the profile's cached-input price); ``tasks.key_id``: the submitting request's
# API key, so a worker's generation is metered to that key, not only to its owner.


def upgrade() -> None:
    op.add_column(
        "usage_entries",
        sa.Column("cached_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("tasks", sa.Column("key_id", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "key_id")
    op.drop_column("usage_entries", "cached_tokens")
