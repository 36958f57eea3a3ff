"""What a task handler sees: its task, its fenced progress updates, and the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from genkeep.db.artifacts import NewArtifact
from genkeep.db.models import Task
from genkeep.db.tasks import Lease, TaskStore
from genkeep.errors import TaskCancelled

if TYPE_CHECKING:
    from genkeep.services import Services


@dataclass
class TaskOutput:
    """A handler's result: JSON for the task, and files already in the blob store."""

    result: dict[str, Any] = field(default_factory=dict)
    artifacts: list[NewArtifact] = field(default_factory=list)


@dataclass
class TaskContext:
    task: Task
    lease: Lease
    tasks: TaskStore
    services: Services
    cancel_requested: bool = False

    async def progress(self, stage: str, fraction: float) -> None:
        """Publish a stage and progress; stops the handler here if the task was cancelled."""
        self.cancel_requested = await self.tasks.set_stage(self.lease, stage, fraction) or (
            self.cancel_requested
        )
        self.check_cancelled()

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise TaskCancelled(self.task.id)

    def blob_key(self, filename: str) -> str:
        """A key unique to this attempt, so a fenced-out attempt cannot overwrite a winner's.

        The attempt number is for people; the lease token makes it unique, because a released
        attempt is not counted and its number comes round again while its upload may still run.
        """
        task, attempt = self.task, f"a{self.task.attempts}-{self.lease.token[:8]}"
        return f"owners/{task.owner_id}/jobs/{task.job_id}/tasks/{task.id}/{attempt}/{filename}"
