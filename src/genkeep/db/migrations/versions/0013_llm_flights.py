"""llm flights: one LLM call in flight per request hash, across workers

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from genkeep.db.drivers.types import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_flights",
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=36), nullable=False),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("request_hash", name=op.f("pk_llm_flights")),
    )


def downgrade() -> None:
    op.drop_table("llm_flights")
