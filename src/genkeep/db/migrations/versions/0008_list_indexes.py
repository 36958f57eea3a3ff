"""Lists cost a page: keyset indexes on (owner_id, created_at, id), a partial claim index
over unfinished tasks, and autovacuum settings for the queue's tables on PostgreSQL

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here, not imported (see 0005).
_UNFINISHED = "status IN ('queued', 'running')"
# The queue's tables take an update or a delete per task state change and an insert per
# change row and event: vacuumed at 1 % dead rows (PostgreSQL's default is 20 %, which on a
# table of a million finished tasks lets 200,000 dead rows pile up in the claim's path),
# and analyzed as often, without the cost-based sleep that lets vacuum fall behind.
_QUEUE_TABLES = ("tasks", "task_changes", "job_events", "task_watchers")
_AUTOVACUUM = {
    "autovacuum_vacuum_scale_factor": "0.01",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0.01",
    "autovacuum_analyze_scale_factor": "0.02",
    "autovacuum_vacuum_cost_delay": "0",
}
_KEYSET = (
    ("prompts", "ix_prompts_owner_created", None),
    ("jobs", "ix_jobs_owner_created", ["owner_id", "created_at"]),
    ("runs", "ix_runs_owner_created", ["owner_id", "created_at"]),
    ("tasks", "ix_tasks_owner_created", None),
)


def upgrade() -> None:
    backend = op.get_bind().dialect.name
    for table, name, old in _KEYSET:
        with op.batch_alter_table(table, schema=None) as batch_op:
            if old is not None:
                batch_op.drop_index(name)
            batch_op.create_index(name, ["owner_id", "created_at", "id"], unique=False)
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_claimable")
        batch_op.create_index(
            "ix_tasks_claimable",
            ["status", "run_after"],
            unique=False,
            postgresql_where=sa.text(_UNFINISHED),
            sqlite_where=sa.text(_UNFINISHED),
        )
    if backend == "postgresql":
        options = ", ".join(f"{name} = {value}" for name, value in _AUTOVACUUM.items())
        for table in _QUEUE_TABLES:
            op.execute(f"ALTER TABLE {table} SET ({options})")


def downgrade() -> None:
    backend = op.get_bind().dialect.name
    if backend == "postgresql":
        for table in _QUEUE_TABLES:
            op.execute(f"ALTER TABLE {table} RESET ({', '.join(_AUTOVACUUM)})")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_claimable")
        batch_op.create_index("ix_tasks_claimable", ["status", "run_after"], unique=False)
    for table, name, old in reversed(_KEYSET):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
            if old is not None:
                batch_op.create_index(name, old, unique=False)
