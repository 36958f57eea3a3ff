"""task_changes: every change of a task, written by triggers, for the task event stream;
task_watchers: the open streams, which the trigger notifies

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from genkeep.db.dialect import drop_task_change_triggers, task_change_triggers
from genkeep.db.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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
