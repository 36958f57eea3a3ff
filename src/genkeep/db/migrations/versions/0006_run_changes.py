"""run_changes: every change of a run, written by triggers, for the run event stream;
run_watchers: the open streams, which the trigger notifies

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from genkeep.db.dialect import drop_run_change_triggers, run_change_triggers
from genkeep.db.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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
