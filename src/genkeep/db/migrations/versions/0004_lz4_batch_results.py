"""lz4 compression for stored batch results on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# pglz costs about half a millisecond per 50 kB batch result on every checkpoint; lz4 a
# fraction of that. Servers built without lz4 (or older than 14) keep their default.
_SET = """
DO $$ BEGIN
    ALTER TABLE run_batches ALTER COLUMN result SET COMPRESSION {method};
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'run_batches.result keeps its compression: %', SQLERRM;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_SET.format(method="lz4"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_SET.format(method="pglz"))
