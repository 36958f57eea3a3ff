"""run_changes: every change of a run, written by triggers, for the run event stream;
run_watchers: the open streams, which the trigger notifies

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from genkeep.db.drivers.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Frozen here, not imported (see 0005). A run's change log is written by triggers for the
# same reasons as a task's: the run manager, a worker's ``extract`` task, a cancel and the
# checkpoint statement all move a run, in whichever process. A heartbeat (lease only) or a
# plan's chunk parameters are no change; a batch done is one. On PostgreSQL the trigger
# NOTIFYs the run id only when a stream watches the run (``run_watchers``).
_RUN_COLUMNS = (
    "status, total_batches, batches_done, batches_failed, entities_found, cancel_requested, error"
)
_RUN_INSERT = (
    f"INSERT INTO run_changes (run_id, owner_id, {_RUN_COLUMNS}, changed_at) "
    "VALUES (NEW.id, NEW.owner_id, NEW.status, NEW.total_batches, NEW.batches_done, "
    "NEW.batches_failed, NEW.entities_found, NEW.cancel_requested, NEW.error, NEW.updated_at)"
)


def _run_changed(distinct: str) -> str:
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in _RUN_COLUMNS.split(", "))


def run_change_triggers(backend: str) -> list[str]:
    """DDL of the triggers that append every change of a run to ``run_changes``."""
    if backend == "postgresql":
        return [
            "CREATE FUNCTION genkeep_run_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {_RUN_INSERT}; "
            "IF EXISTS (SELECT 1 FROM run_watchers WHERE run_id = NEW.id) THEN "
            "PERFORM pg_notify('genkeep_run_changes', NEW.id); END IF; "
            "RETURN NULL; END $$",
            "CREATE TRIGGER run_created AFTER INSERT ON runs FOR EACH ROW "
            "EXECUTE FUNCTION genkeep_run_changed()",
            "CREATE TRIGGER run_changed AFTER UPDATE ON runs FOR EACH ROW "
            f"WHEN ({_run_changed('IS DISTINCT FROM')}) EXECUTE FUNCTION genkeep_run_changed()",
        ]
    return [
        f"CREATE TRIGGER run_created AFTER INSERT ON runs FOR EACH ROW BEGIN {_RUN_INSERT}; END",
        "CREATE TRIGGER run_changed AFTER UPDATE ON runs FOR EACH ROW "
        f"WHEN {_run_changed('IS NOT')} BEGIN {_RUN_INSERT}; END",
    ]


def drop_run_change_triggers(backend: str) -> list[str]:
    statements = ["DROP TRIGGER IF EXISTS run_created", "DROP TRIGGER IF EXISTS run_changed"]
    if backend == "postgresql":
        return [f"{s} ON runs" for s in statements] + ["DROP FUNCTION genkeep_run_changed()"]
    return statements


def upgrade() -> None:
    op.create_table(
        "run_changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total_batches", sa.Integer(), nullable=False),
        sa.Column("batches_done", sa.Integer(), nullable=False),
        sa.Column("batches_failed", sa.Integer(), nullable=False),
        sa.Column("entities_found", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_changes_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_run_changes")),
    )
    with op.batch_alter_table("run_changes", schema=None) as batch_op:
        batch_op.create_index("ix_run_changes_run", ["run_id", "seq"], unique=False)
    op.create_table(
        "run_watchers",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("watcher_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_watchers_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "watcher_id", name=op.f("pk_run_watchers")),
    )
    for statement in run_change_triggers(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_run_change_triggers(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("run_watchers")
    with op.batch_alter_table("run_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_run_changes_run")
    op.drop_table("run_changes")
