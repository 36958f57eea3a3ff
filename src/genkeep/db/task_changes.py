"""A task's change log (``task_changes``, written by triggers), read by the task event stream."""

from __future__ import annotations

from genkeep.db.change_feed import ChangeFeed
from genkeep.db.drivers.base import TASK_CHANGES_CHANNEL
from genkeep.db.models import TaskChange, TaskWatcher


class TaskChanges(ChangeFeed[TaskChange]):
    table = TaskChange
    watcher = TaskWatcher
    key = "task_id"
    channel = TASK_CHANGES_CHANNEL
