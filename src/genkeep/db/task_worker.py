"""A worker's side of tasks: leased claims, fenced progress and completion, the reaper.

Every write a worker makes is fenced by the lease token it was given at claim time: once a
lease has been taken over, its old holder can neither heartbeat, move the stage, nor
commit output, and a finished task is never overwritten.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession

from genkeep.db.artifacts import NewArtifact
from genkeep.db.database import completes_when_cancelled
from genkeep.db.drivers.base import TaskClaim, TaskCompletion
from genkeep.db.jobs import Audit, append_event
from genkeep.db.models import Artifact, Task
from genkeep.db.task_repository import UNFINISHED, Lease, TaskRepository, task_from_row
from genkeep.db.types import utcnow
from genkeep.errors import LeaseLost


class TaskWorkerOps(TaskRepository):
    async def claim(self, worker_id: str, lease_s: float, limit: int) -> list[tuple[Task, Lease]]:
        """Claim up to ``limit`` queued tasks that are due by the database's clock."""
        claim = TaskClaim(worker_id, str(uuid.uuid4()), lease_s, limit)
        return self._leased(claim, await self.db.driver.task_claim(claim))

    @staticmethod
    def _leased(claim: TaskClaim, rows: list[Any]) -> list[tuple[Task, Lease]]:
        tasks = [task_from_row(row) for row in rows]
        return [(task, Lease(task.id, claim.token, claim.worker_id)) for task in tasks]

    async def reap_expired(self) -> int:
        """Queue again (or fail, after the last attempt) tasks whose worker stopped renewing
        its lease; clearing the token fences that worker out. Returns how many were reaped.

        Expiry is judged by the database's clock in the statement itself: a reaper whose
        clock runs ahead must not take a healthy worker's task.
        """
        now = self.db.driver.now()
        async with self.db.transaction() as session:
            reaped = (
                await session.execute(
                    update(Task)
                    # The IN names the claim index's predicate: SQLite uses a partial
                    # index only for a query that repeats it.
                    .where(
                        Task.status.in_(UNFINISHED),
                        Task.status == "running",
                        Task.lease_expires_at < now,
                    )
                    .values(
                        status=case((Task.attempts >= Task.max_attempts, "failed"), else_="queued"),
                        stage=case((Task.attempts >= Task.max_attempts, "failed"), else_="queued"),
                        error=case(
                            (
                                Task.attempts >= Task.max_attempts,
                                "the worker running the last attempt stopped responding",
                            ),
                            else_=Task.error,
                        ),
                        finished_at=case((Task.attempts >= Task.max_attempts, now), else_=None),
                        lease_token=None,
                        lease_expires_at=None,
                        # run_after stays: a reaped task keeps its place in the queue.
                        updated_at=now,
                    )
                    .returning(
                        Task.id,
                        Task.kind,
                        Task.job_id,
                        Task.owner_id,
                        Task.trace_id,
                        Task.status,
                        Task.error,
                        Task.worker_id,
                    )
                )
            ).all()
            for row in reaped:
                event = "task.failed" if row.status == "failed" else "task.lease_expired"
                audit = Audit(actor="reaper", trace_id=row.trace_id)
                payload = {"task_id": row.id, "kind": row.kind, "worker": row.worker_id}
                if row.status == "failed":
                    payload["error"] = row.error
                await append_event(session, (row.job_id, row.owner_id), event, payload, audit)
            if reaped:
                await self._wake(session)
        if reaped:
            self._wake_local()
        return len(reaped)

    @completes_when_cancelled
    async def heartbeat(self, lease: Lease, lease_s: float) -> bool:
        """Extend the lease; returns whether cancel was requested. LeaseLost if fenced out."""
        return await self._fenced(lease, lease_expires_at=self.db.driver.now_plus(lease_s))

    @completes_when_cancelled
    async def record_attempt(self, lease: Lease, trace_context: str | None) -> None:
        """Store the running attempt's span (a traceparent) for the attempt after it."""
        await self._fenced(lease, attempt_context=trace_context)

    @completes_when_cancelled
    async def set_stage(self, lease: Lease, stage: str, progress: float) -> bool:
        return await self._fenced(lease, stage=stage, progress=max(0.0, min(progress, 1.0)))

    async def _fenced(self, lease: Lease, **values: Any) -> bool:
        async with self.db.transaction() as session:
            row = (
                await session.execute(
                    update(Task)
                    .where(
                        Task.id == lease.task_id,
                        Task.lease_token == lease.token,
                        Task.status == "running",
                    )
                    .values(**values, updated_at=utcnow())
                    .returning(Task.cancel_requested)
                )
            ).first()
        if row is None:
            raise LeaseLost(f"lease on task {lease.task_id} was taken over")
        return bool(row.cancel_requested)

    @completes_when_cancelled
    async def complete(
        self, lease: Lease, result: dict[str, Any], outputs: list[NewArtifact]
    ) -> list[Artifact]:
        """Commit the task's output and its artifacts in one transaction, once."""
        if not outputs:
            [committed] = await self.complete_many([(lease, result)])
            if not committed:
                raise LeaseLost(f"lease on task {lease.task_id} was taken over; nothing committed")
            return []
        return await self._commit(lease, result, outputs)

    async def complete_many(self, completions: list[tuple[Lease, dict[str, Any]]]) -> list[bool]:
        """Complete tasks without artifacts, each fenced by its own lease; which committed
        (a worker's group commit: one statement or transaction for them all)."""
        done = await self.db.driver.task_complete_many(_completions(completions))
        return [lease.task_id in done for lease, _ in completions]

    async def complete_and_claim(
        self,
        completions: list[tuple[Lease, dict[str, Any]]],
        worker_id: str,
        lease_s: float,
        limit: int,
    ) -> tuple[list[bool], list[tuple[Task, Lease]]]:
        """``complete_many``, then ``claim`` up to ``limit`` tasks, committed together (a busy
        worker's cycle is one round trip and one commit)."""
        if limit <= 0:
            return await self.complete_many(completions), []
        claim = TaskClaim(worker_id, str(uuid.uuid4()), lease_s, limit)
        done, rows = await self.db.driver.task_complete_and_claim(_completions(completions), claim)
        return [lease.task_id in done for lease, _ in completions], self._leased(claim, rows)

    async def _commit(
        self, lease: Lease, result: dict[str, Any], outputs: list[NewArtifact]
    ) -> list[Artifact]:
        async with self.db.transaction() as session:
            # A completed task shows no error; earlier attempts' errors stay in its events.
            task = await self._finish(
                session, lease, "completed", result=result, progress=1.0, error=None
            )
            job = (task.job_id, task.owner_id)
            artifacts = [await self.artifacts.add(session, job, task.id, new) for new in outputs]
            payload = {
                "task_id": task.id,
                "kind": task.kind,
                "artifacts": [
                    {"id": a.id, "kind": a.kind, "version": a.version} for a in artifacts
                ],
            }
            await append_event(session, job, "task.completed", payload, self._audit(lease, task))
        return artifacts

    @completes_when_cancelled
    async def fail(self, lease: Lease, error: str, retry_in_s: float | None) -> Task:
        """Record a failed attempt: queued again ``retry_in_s`` from now (the database's
        clock), or failed for good when None."""
        async with self.db.transaction() as session:
            if retry_in_s is not None:
                task = await self._finish(
                    session,
                    lease,
                    "queued",
                    error=error,
                    run_after=self.db.driver.now_plus(retry_in_s),
                    finished=False,
                )
                event = "task.retry_scheduled"
            else:
                task = await self._finish(session, lease, "failed", error=error)
                event = "task.failed"
            payload = {
                "task_id": task.id,
                "kind": task.kind,
                "attempt": task.attempts,
                "error": error[:500],
            }
            await append_event(
                session, (task.job_id, task.owner_id), event, payload, self._audit(lease, task)
            )
        return task

    @completes_when_cancelled
    async def mark_cancelled(self, lease: Lease) -> None:
        async with self.db.transaction() as session:
            task = await self._finish(session, lease, "cancelled")
            await append_event(
                session,
                (task.job_id, task.owner_id),
                "task.cancelled",
                {"task_id": task.id, "kind": task.kind},
                self._audit(lease, task),
            )

    @completes_when_cancelled
    async def release(self, lease: Lease) -> None:
        """Give a task back (worker shutting down): queued now, the attempt not counted."""
        async with self.db.transaction() as session:
            task = await self._finish(
                session,
                lease,
                "queued",
                run_after=self.db.driver.now(),
                finished=False,
                attempts=Task.attempts - 1,
            )
            await append_event(
                session,
                (task.job_id, task.owner_id),
                "task.released",
                {"task_id": task.id, "kind": task.kind},
                self._audit(lease, task),
            )
            await self._wake(session)

    async def _finish(
        self,
        session: AsyncSession,
        lease: Lease,
        status: str,
        *,
        finished: bool = True,
        **values: Any,
    ) -> Task:
        now = utcnow()
        if finished:
            values["finished_at"] = now
        stage = {"completed": "done"}.get(status, status)
        task = (
            (
                await session.execute(
                    update(Task)
                    .where(
                        Task.id == lease.task_id,
                        Task.lease_token == lease.token,
                        Task.status == "running",
                    )
                    .values(
                        status=status,
                        stage=stage,
                        lease_token=None,
                        lease_expires_at=None,
                        updated_at=now,
                        **values,
                    )
                    .returning(Task)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .first()
        )
        if task is None:
            raise LeaseLost(f"lease on task {lease.task_id} was taken over; nothing committed")
        return task

    @staticmethod
    def _audit(lease: Lease, task: Task) -> Audit:
        return Audit(actor=f"worker:{lease.worker_id}", trace_id=task.trace_id)


def _completions(completions: list[tuple[Lease, dict[str, Any]]]) -> list[TaskCompletion]:
    return [
        TaskCompletion(lease.task_id, lease.token, lease.worker_id, result)
        for lease, result in completions
    ]
