"""A client's side of tasks: idempotent submission (I4), reads, cancel and retry; every
operation takes the owner (I3)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from genkeep.db.artifacts import ArtifactStore
from genkeep.db.clock import db_now, db_now_plus
from genkeep.db.database import Database
from genkeep.db.dialect import insert_ignoring_conflicts, submit_many_statement
from genkeep.db.driver import refuses_a_row
from genkeep.db.group_commit import GroupCommit
from genkeep.db.jobs import Audit, append_event
from genkeep.db.models import Job, Task
from genkeep.db.task_repository import (
    FINISHED,
    STATUSES,
    Submission,
    TaskRepository,
    task_from_row,
)
from genkeep.db.types import utcnow
from genkeep.errors import Conflict, IdempotencyMismatch, NotFound


class TaskClientOps(TaskRepository):
    def __init__(
        self,
        database: Database,
        artifacts: ArtifactStore,
        on_submit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(database, artifacts, on_submit)
        self._submit_many = submit_many_statement(database.backend)
        # Concurrent submissions share one statement on PostgreSQL (db/group_commit.py).
        self._submits: GroupCommit[dict[str, Any], Task | None] = GroupCommit(self._insert_many)

    async def submit(self, job: Job, submission: Submission, audit: Audit) -> tuple[Task, bool]:
        """The task for this idempotency key, creating it if new; True when created."""
        request_hash = submission.request_hash(job.id)
        now = utcnow()
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "owner_id": job.owner_id,
            "job_id": job.id,
            "kind": submission.kind,
            "idempotency_key": submission.idempotency_key,
            "request_hash": request_hash,
            "payload": submission.payload,
            "max_attempts": submission.max_attempts,
            "trace_id": audit.trace_id,
        }
        # Insert first: the common case is a new key, and the unique constraint decides races.
        timeout_s = submission.timeout.total_seconds()
        created = await self._insert(job, values, now, timeout_s, audit)
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

    async def _insert(
        self, job: Job, values: dict[str, Any], now: datetime, timeout_s: float, audit: Audit
    ) -> Task | None:
        """Insert a queued task with its event and wake-up; None if the key exists.

        It is due now and times out by the database's clock: a submitter whose clock runs
        ahead must not postpone its own task.
        """
        if self._submit_many is not None:
            new = {**values, "now": now, "timeout_s": timeout_s, "actor": audit.actor}
            return await self._submits.write(new)
        queued = {
            "status": "queued",
            "stage": "queued",
            "progress": 0.0,
            "attempts": 0,
            "run_after": db_now(),
            "timeout_at": db_now_plus(timeout_s),
            "cancel_requested": False,
            "created_at": now,
            "updated_at": now,
        }
        statement = insert_ignoring_conflicts(self.db.backend, Task.__table__, values | queued)  # type: ignore[arg-type]
        async with self.db.transaction() as session:
            row = (await session.execute(statement.returning(*Task.__table__.columns))).first()
            if row is None:
                return None
            payload = {"task_id": values["id"], "kind": values["kind"]}
            await append_event(session, job, "task.queued", payload, audit)
            await self._wake(session)
        return Task(**row._mapping)

    async def _insert_many(self, batch: list[dict[str, Any]]) -> list[Task | Exception | None]:
        """Insert a batch of submissions (PostgreSQL); a row the server refuses (say, its job
        was just deleted) fails the batch, so then each is tried alone for its own outcome."""
        try:
            return list(await self._insert_batch(batch))
        except Exception as exc:
            if len(batch) == 1 or not refuses_a_row(exc):
                raise  # a lost connection fails them all: the database is unavailable
        outcomes: list[Task | Exception | None] = []
        for new in batch:
            try:
                outcomes.extend(await self._insert_batch([new]))
            except Exception as exc:
                if not refuses_a_row(exc):
                    raise
                outcomes.append(exc)
        return outcomes

    async def _insert_batch(self, batch: list[dict[str, Any]]) -> list[Task | None]:
        assert self._submit_many is not None
        params = {
            "ids": [new["id"] for new in batch],
            "owner_ids": [new["owner_id"] for new in batch],
            "job_ids": [new["job_id"] for new in batch],
            "kinds": [new["kind"] for new in batch],
            "keys": [new["idempotency_key"] for new in batch],
            "hashes": [new["request_hash"] for new in batch],
            "payloads": [json.dumps(new["payload"]) for new in batch],
            "max_attempts": [new["max_attempts"] for new in batch],
            "timeouts": [new["timeout_s"] for new in batch],
            "trace_ids": [new["trace_id"] for new in batch],
            "actors": [new["actor"] for new in batch],
            "nows": [new["now"] for new in batch],
        }
        created = {row["id"]: row for row in await self._submit_many.fetch(self.db, params)}
        return [
            task_from_row(created[new["id"]]) if new["id"] in created else None for new in batch
        ]

    async def count_by_status(self) -> dict[str, int]:
        """Every owner's tasks by status (every status, zero included): the queue's depth."""
        query = select(Task.status, func.count()).group_by(Task.status)
        counts = dict.fromkeys(STATUSES, 0)
        async with self.db.reading() as session:
            for status, count in (await session.execute(query)).all():
                counts[status] = count
        return counts

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
            await append_event(session, (task.job_id, owner_id), event, {"task_id": task_id}, audit)
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
            task.run_after, task.timeout_at = db_now(), db_now_plus(timeout.total_seconds())
            task.cancel_requested, task.error, task.finished_at = False, None, None
            task.updated_at = utcnow()
            await session.flush()
            await session.refresh(task)  # the database's clock stamped the new due time
            await append_event(
                session, (task.job_id, owner_id), "task.retried", {"task_id": task_id}, audit
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
