"""batch leases: one run's batches claimed by a fleet of workers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from genkeep.db.drivers.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Nullable columns only: SQLite adds them in place (no table rebuild, so the runs
# triggers of 0006 stay as they are). A batch row is now written when the plan is set
# ("pending"), leased by the worker that claims it ("running"), then "done" or "failed";
# ``holder`` is kept after the commit: each worker's share of the run.


def upgrade() -> None:
    op.add_column("runs", sa.Column("concurrency", sa.Integer(), nullable=True))
    op.add_column("run_batches", sa.Column("holder", sa.String(128), nullable=True))
    op.add_column("run_batches", sa.Column("lease_token", sa.String(36), nullable=True))
    op.add_column("run_batches", sa.Column("lease_expires_at", UTCDateTime(), nullable=True))
    op.add_column("run_batches", sa.Column("claimed_at", UTCDateTime(), nullable=True))
    op.create_index("ix_run_batches_status", "run_batches", ["status", "run_id"])


def downgrade() -> None:
    # SQLite drops a column in place (3.35+); a rebuild would lose the runs triggers.
    op.drop_index("ix_run_batches_status", table_name="run_batches")
    for column in ("claimed_at", "lease_expires_at", "lease_token", "holder"):
        op.drop_column("run_batches", column)
    op.drop_column("runs", "concurrency")
