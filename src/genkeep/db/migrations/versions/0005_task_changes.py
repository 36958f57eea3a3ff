"""task_changes: every change of a task, written by triggers, for the task event stream;
task_watchers: the open streams, which the trigger notifies

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from genkeep.db.drivers.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Frozen here, not imported: a migration must create what it created when it shipped,
# whatever later code says. A task's change log is written by triggers, not by each code
# path that moves a task: the claim, completion and submit statements, the reaper and
# every fenced update would each have to remember it, and the one that forgot would make
# the event stream skip a change. A heartbeat (lease only) is no change. On PostgreSQL the
# trigger also NOTIFYs the task id when a stream watches the task (``task_watchers``: a
# NOTIFY serializes commits, too dear for every change of every task); per task, the row
# lock orders the writers, so ``seq`` is commit order.
_CHANGE_COLUMNS = "status, stage, progress, attempts, cancel_requested, error"
_CHANGE_INSERT = (
    f"INSERT INTO task_changes (task_id, owner_id, {_CHANGE_COLUMNS}, changed_at) "
    "VALUES (NEW.id, NEW.owner_id, NEW.status, NEW.stage, NEW.progress, NEW.attempts, "
    "NEW.cancel_requested, NEW.error, NEW.updated_at)"
)


def _changed(distinct: str) -> str:
    return " OR ".join(
        f"OLD.{column} {distinct} NEW.{column}" for column in _CHANGE_COLUMNS.split(", ")[:-1]
    )


def task_change_triggers(backend: str) -> list[str]:
    """DDL of the triggers that append every change of a task to ``task_changes``."""
    if backend == "postgresql":
        return [
            "CREATE FUNCTION genkeep_task_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {_CHANGE_INSERT}; "
            "IF EXISTS (SELECT 1 FROM task_watchers WHERE task_id = NEW.id) THEN "
            "PERFORM pg_notify('genkeep_task_changes', NEW.id); END IF; "
            "RETURN NULL; END $$",
            "CREATE TRIGGER task_created AFTER INSERT ON tasks FOR EACH ROW "
            "EXECUTE FUNCTION genkeep_task_changed()",
            "CREATE TRIGGER task_changed AFTER UPDATE ON tasks FOR EACH ROW "
            f"WHEN ({_changed('IS DISTINCT FROM')}) EXECUTE FUNCTION genkeep_task_changed()",
        ]
    return [
        "CREATE TRIGGER task_created AFTER INSERT ON tasks FOR EACH ROW "
        f"BEGIN {_CHANGE_INSERT}; END",
        "CREATE TRIGGER task_changed AFTER UPDATE ON tasks FOR EACH ROW "
        f"WHEN {_changed('IS NOT')} BEGIN {_CHANGE_INSERT}; END",
    ]


def drop_task_change_triggers(backend: str) -> list[str]:
    statements = ["DROP TRIGGER IF EXISTS task_created", "DROP TRIGGER IF EXISTS task_changed"]
    if backend == "postgresql":
        return [f"{s} ON tasks" for s in statements] + ["DROP FUNCTION genkeep_task_changed()"]
    return statements


def upgrade() -> None:
    op.create_table(
        "task_changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_changes_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_task_changes")),
    )
    with op.batch_alter_table("task_changes", schema=None) as batch_op:
        batch_op.create_index("ix_task_changes_task", ["task_id", "seq"], unique=False)
    op.create_table(
        "task_watchers",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("watcher_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_watchers_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "watcher_id", name=op.f("pk_task_watchers")),
    )
    for statement in task_change_triggers(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_task_change_triggers(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("task_watchers")
    with op.batch_alter_table("task_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_task_changes_task")
    op.drop_table("task_changes")
