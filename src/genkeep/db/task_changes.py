"""A task's change log (``task_changes``, written by triggers), read by the task event stream."""

from __future__ import annotations

from sqlalchemy import select

from genkeep.db.change_feed import ChangeFeed
from genkeep.db.dialect import TASK_CHANGES_CHANNEL
from genkeep.db.models import TaskChange, TaskWatcher


class TaskChanges(ChangeFeed):
    watcher = TaskWatcher
    key = "task_id"
    channel = TASK_CHANGES_CHANNEL

    async def after(
        self, owner_id: str, task_id: str, seq: int = 0, limit: int = 200
    ) -> list[TaskChange]:
        """The task's changes after ``seq``, oldest first."""
        query = (
            select(TaskChange)
            .where(
                TaskChange.owner_id == owner_id,
                TaskChange.task_id == task_id,
                TaskChange.seq > seq,
            )
            .order_by(TaskChange.seq)
            .limit(limit)
        )
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())
