"""retention and deletion: the deletions audit table, the sweep slot, and the indexes the
retention sweep reads by (finished tasks, LLM-cache age)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from genkeep.db.drivers.types import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deletions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column(
            "counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletions")),
    )
    with op.batch_alter_table("deletions", schema=None) as batch_op:
        batch_op.create_index("ix_deletions_owner", ["owner_id", "requested_at"], unique=False)
        batch_op.create_index("ix_deletions_pending", ["finished_at"], unique=False)
    op.create_table(
        "sweeps",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("swept_at", UTCDateTime(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sweeps")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_finished", ["finished_at"], unique=False)
    with op.batch_alter_table("llm_cache", schema=None) as batch_op:
        batch_op.create_index("ix_llm_cache_created", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("llm_cache", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_cache_created")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_finished")
    op.drop_table("sweeps")
    with op.batch_alter_table("deletions", schema=None) as batch_op:
        batch_op.drop_index("ix_deletions_pending")
        batch_op.drop_index("ix_deletions_owner")
    op.drop_table("deletions")
