"""Tasks: idempotent submission (I4), leased claims, fenced progress and completion.

One repository, ``TaskStore``, in two rooms: what clients do (db/task_client.py: submit,
read, cancel, retry) and what workers do (db/task_worker.py: claim, heartbeat, fenced
writes, completion, the reaper). Every worker write is fenced by its lease token.
"""

from __future__ import annotations

from genkeep.db.task_client import TaskClientOps
from genkeep.db.task_repository import FINISHED, Lease, Submission
from genkeep.db.task_worker import TaskWorkerOps

__all__ = ["FINISHED", "Lease", "Submission", "TaskStore"]


class TaskStore(TaskClientOps, TaskWorkerOps):
    """Every query on tasks; clients' operations take the owner (I3)."""
