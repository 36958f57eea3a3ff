"""A client's side of tasks: idempotent submission (I4), reads, cancel and retry; every
operation takes the owner (I3)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from genkeep.db.artifacts import ArtifactStore
from genkeep.db.database import Database
from genkeep.db.drivers.base import NewTask
from genkeep.db.group_commit import GroupCommit
from genkeep.db.jobs import Audit, append_event
from genkeep.db.models import Job, Task
from genkeep.db.paging import Position, newest_first
from genkeep.db.task_repository import (
    FINISHED,
    UNFINISHED,
    Submission,
    TaskRepository,
    task_from_row,
)
from genkeep.db.types import utcnow
from genkeep.errors import Conflict, IdempotencyMismatch, NotFound
from genkeep.telemetry import tracing
from genkeep.telemetry.messaging import producer_span


class TaskClientOps(TaskRepository):
    def __init__(
        self,
        database: Database,
        artifacts: ArtifactStore,
        on_submit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(database, artifacts, on_submit)
        # Concurrent submissions share one statement and one commit (db/group_commit.py).
        self._submits: GroupCommit[NewTask, Task | None] = GroupCommit(self._insert_many)

    async def submit(self, job: Job, submission: Submission, audit: Audit) -> tuple[Task, bool]:
        """The task for this idempotency key, creating it if new; True when created."""
        with producer_span(submission.kind) as span:
            task, created = await self._submit(job, submission, audit)
            if span is not None:
                span.set_attributes(
                    {"messaging.message.id": task.id, "genkeep.task.created": created}
                )
            return task, created

    async def _submit(self, job: Job, submission: Submission, audit: Audit) -> tuple[Task, bool]:
        request_hash = submission.request_hash(job.id)
        new = NewTask(
            id=str(uuid.uuid4()),
            owner_id=job.owner_id,
            job_id=job.id,
            kind=submission.kind,
            idempotency_key=submission.idempotency_key,
            request_hash=request_hash,
            payload=submission.payload,
            max_attempts=submission.max_attempts,
            timeout_s=submission.timeout.total_seconds(),
            trace_id=audit.trace_id,
            actor=audit.actor,
            now=utcnow(),
            # Stored with the row, in the transaction that queues it (I18).
            trace_context=tracing.carrier(),
            key_id=audit.key_id,
        )
        # Insert first: the common case is a new key, and the unique constraint decides races.
        # The task is due now by the database's clock, and its event commits with it.
        created = await self._submits.write(new)
        if created is not None:
            self._wake_local()
            return created, True
        existing = await self._by_key(job.owner_id, submission.idempotency_key)
        assert existing is not None, "a conflicting insert means the row exists"
        if existing.request_hash != request_hash:
            raise IdempotencyMismatch(
                f"Idempotency-Key {submission.idempotency_key!r} was used for a different "
                f"request (task {existing.id}); use a new key for a new request"
            )
        return existing, False

    async def _insert_many(self, batch: list[NewTask]) -> list[Task | Exception | None]:
        """Insert a batch of submissions; a task the database refused fails alone."""
        return [
            outcome if outcome is None or isinstance(outcome, Exception) else task_from_row(outcome)
            for outcome in await self.db.driver.task_submit_many(batch)
        ]

    async def count_by_status(self) -> dict[str, int]:
        """Every owner's unfinished tasks by status (zero included): the queue's depth,
        read from the claim index, whose size is the queue's, not the history's."""
        query = (
            select(Task.status, func.count())
            .where(Task.status.in_(UNFINISHED))
            .group_by(Task.status)
        )
        counts = dict.fromkeys(UNFINISHED, 0)
        async with self.db.reading() as session:
            for status, count in (await session.execute(query)).all():
                counts[status] = count
        return counts

    async def list_page(
        self, owner_id: str, *, limit: int, job_id: str | None = None, after: Position | None = None
    ) -> list[Task]:
        """The owner's tasks (of one job, if given), newest first, after ``after`` (keyset)."""
        query = select(Task).where(Task.owner_id == owner_id)
        if job_id is not None:
            query = query.where(Task.job_id == job_id)
        query = newest_first(query, Task.created_at, Task.id, after).limit(limit)
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    async def get(self, owner_id: str, task_id: str) -> Task | None:
        query = select(Task).where(Task.id == task_id, Task.owner_id == owner_id)
        async with self.db.reading() as session:
            return (await session.execute(query)).scalars().first()

    async def request_cancel(self, owner_id: str, task_id: str, audit: Audit) -> Task:
        """Cancel a queued task now; ask a running one to stop at its next checkpoint."""
        async with self.db.transaction() as session:
            task = await self._owned_for_update(session, owner_id, task_id)
            if task.status in FINISHED:
                raise Conflict(f"task {task_id} is already {task.status}")
            if task.status == "queued":
                task.status, task.stage, task.finished_at = "cancelled", "cancelled", utcnow()
                event = "task.cancelled"
            else:
                task.cancel_requested = True
                event = "task.cancel_requested"
            task.updated_at = utcnow()
            payload = {"task_id": task_id, "kind": task.kind}
            await append_event(session, (task.job_id, owner_id), event, payload, audit)
        return task

    async def retry(self, owner_id: str, task_id: str, extra_attempts: int, audit: Audit) -> Task:
        """Queue a failed or cancelled task again with a fresh attempt budget."""
        async with self.db.transaction() as session:
            task = await self._owned_for_update(session, owner_id, task_id)
            if task.status not in ("failed", "cancelled"):
                raise Conflict(
                    f"task {task_id} is {task.status}; only failed or cancelled "
                    "tasks can be retried"
                )
            timeout = task.timeout_at - task.created_at if task.timeout_at else timedelta(hours=1)
            task.status, task.stage, task.progress = "queued", "queued", 0.0
            task.max_attempts = task.attempts + extra_attempts
            task.run_after = self.db.driver.now()
            task.timeout_at = self.db.driver.now_plus(timeout.total_seconds())
            task.cancel_requested, task.error, task.finished_at = False, None, None
            task.updated_at = utcnow()
            await session.flush()
            await session.refresh(task)  # the database's clock stamped the new due time
            await append_event(
                session,
                (task.job_id, owner_id),
                "task.retried",
                {"task_id": task_id, "kind": task.kind},
                audit,
            )
            await self._wake(session)
        self._wake_local()
        return task

    async def _by_key(self, owner_id: str, key: str) -> Task | None:
        query = select(Task).where(Task.owner_id == owner_id, Task.idempotency_key == key)
        async with self.db.reading() as session:
            return (await session.execute(query)).scalars().first()

    @staticmethod
    async def _owned_for_update(session: AsyncSession, owner_id: str, task_id: str) -> Task:
        query = select(Task).where(Task.id == task_id, Task.owner_id == owner_id).with_for_update()
        task = (await session.execute(query)).scalars().first()
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return task
