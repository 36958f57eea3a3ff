"""Deletions of a job, a prompt or a whole owner: the audit record and each bounded step.

The record (``deletions``) is written before the first row goes and finished after the last
blob, so a deletion a crash cut short is found by ``pending`` and run again; every step
deletes what is still there, so running one twice is harmless. Every statement names the
owner (I3): a deletion never reaches another owner's rows, whatever ids it is given.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, literal, select, tuple_, update
from sqlalchemy.sql import ColumnElement, Select

from genkeep.db.database import Database
from genkeep.db.jobs import Audit
from genkeep.db.models import (
    ApiKey,
    Artifact,
    ArtifactLatest,
    Deletion,
    Job,
    JobEvent,
    Prompt,
    Result,
    Run,
    RunBatch,
    RunChange,
    RunEntity,
    SpendCounter,
    SpendLimit,
    SpendReservation,
    Task,
    TaskChange,
    UsageEntry,
)
from genkeep.db.types import utcnow

KINDS = ("job", "prompt", "owner")
# A run that may still be executing somewhere: asked to stop before it is deleted.
_RUN_LIVE = ("pending", "running", "interrupted")


@dataclass(frozen=True, slots=True)
class Scope:
    """What one deletion covers: an owner's job, prompt, or everything of the owner."""

    owner_id: str
    kind: str
    target_id: str

    def jobs(self) -> ColumnElement[bool]:
        where = Job.owner_id == self.owner_id
        return where & (Job.id == self.target_id) if self.kind == "job" else where

    def job_rows(self, column: Any, owner_column: Any) -> ColumnElement[bool]:
        """Rows of the scope's jobs, by their ``job_id`` column and owner column."""
        # A prompt's scope has no jobs: this would name every job of the owner.
        assert self.kind != "prompt", "a prompt deletion reaches no job"
        where: ColumnElement[bool] = owner_column == self.owner_id
        return where & (column == self.target_id) if self.kind == "job" else where

    def runs(self) -> ColumnElement[bool]:
        return self.job_rows(Run.job_id, Run.owner_id)

    def tasks(self) -> ColumnElement[bool]:
        return self.job_rows(Task.job_id, Task.owner_id)


class DeletionStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    # The audit record.

    async def begin(self, scope: Scope, audit: Audit) -> str:
        """Record who asked to delete what, now; the deletion's id."""
        assert scope.kind in KINDS
        deletion_id = str(uuid.uuid4())
        async with self.db.transaction() as session:
            session.add(
                Deletion(
                    id=deletion_id,
                    owner_id=scope.owner_id,
                    kind=scope.kind,
                    target_id=scope.target_id,
                    actor=audit.actor[:128],
                    trace_id=audit.trace_id,
                    requested_at=utcnow(),
                    counts={},
                )
            )
        return deletion_id

    async def finish(self, deletion_id: str, counts: dict[str, int]) -> None:
        """Stamp the deletion done with how many of each went (added to an earlier try's)."""
        async with self.db.transaction() as session:
            found = await session.get(Deletion, deletion_id)
            if found is None:
                return
            merged = dict(found.counts or {})
            for name, count in counts.items():
                merged[name] = int(merged.get(name, 0)) + count
            found.counts, found.finished_at = merged, utcnow()

    async def pending(self, limit: int = 100) -> list[Deletion]:
        """Deletions begun and not finished (a crash cut them short), oldest first."""
        query = (
            select(Deletion)
            .where(Deletion.finished_at.is_(None))
            .order_by(Deletion.requested_at)
            .limit(limit)
        )
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    async def list_for_owner(self, owner_id: str, limit: int = 100) -> list[Deletion]:
        query = (
            select(Deletion)
            .where(Deletion.owner_id == owner_id)
            .order_by(Deletion.requested_at.desc(), Deletion.id)
            .limit(limit)
        )
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    # What exists.

    async def prompt_exists(self, owner_id: str, prompt_id: str) -> bool:
        query = select(Prompt.id).where(Prompt.id == prompt_id, Prompt.owner_id == owner_id)
        async with self.db.reading() as session:
            return (await session.execute(query)).first() is not None

    async def owner_exists(self, owner_id: str) -> bool:
        """Whether anything of the owner is stored, or a purge of it is unfinished."""
        checks: list[Select[Any]] = [
            select(table.owner_id).where(table.owner_id == owner_id).limit(1)
            for table in (Job, Prompt, Run, ApiKey, Task, Result)
        ]
        checks.append(
            select(Deletion.id)
            .where(
                Deletion.owner_id == owner_id,
                Deletion.kind == "owner",
                Deletion.finished_at.is_(None),
            )
            .limit(1)
        )
        async with self.db.reading() as session:
            for check in checks:
                if (await session.execute(check)).first() is not None:
                    return True
        return False

    # Stopping work first.

    async def stop_work(self, scope: Scope) -> None:
        """Cancel the scope's queued tasks, ask running ones and live runs to stop (a
        fenced worker then commits nothing), and revoke an owner's keys being purged."""
        now = utcnow()
        async with self.db.transaction() as session:
            await session.execute(
                update(Task)
                .where(scope.tasks(), Task.status == "queued")
                .values(status="cancelled", stage="cancelled", finished_at=now, updated_at=now)
            )
            await session.execute(
                update(Task)
                .where(scope.tasks(), Task.status == "running", Task.cancel_requested.is_(False))
                .values(cancel_requested=True, updated_at=now)
            )
            await session.execute(
                update(Run)
                .where(scope.runs(), Run.status.in_(_RUN_LIVE))
                .values(cancel_requested=True, updated_at=now)
            )
            if scope.kind == "owner":
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.owner_id == scope.owner_id, ApiKey.revoked_at.is_(None))
                    .values(revoked_at=now)
                )

    async def running_tasks(self, scope: Scope) -> int:
        query = (
            select(func.count()).select_from(Task).where(scope.tasks(), Task.status == "running")
        )
        async with self.db.reading() as session:
            return int((await session.execute(query)).scalar_one())

    # Runs: their blobs go first, while their rows still name them.

    async def run_blobs(self, scope: Scope, limit: int) -> list[tuple[str, str]]:
        """(run id, input blob key) of up to ``limit`` of the scope's runs."""
        query = select(Run.id, Run.input_blob_key).where(scope.runs()).order_by(Run.id).limit(limit)
        async with self.db.reading() as session:
            return [(row.id, row.input_blob_key) for row in (await session.execute(query)).all()]

    async def inputs_kept(self, scope: Scope, keys: list[str]) -> set[str]:
        """Which input blob keys a run outside the scope still names (same owner, same text)."""
        if not keys:
            return set()
        query = select(Run.input_blob_key).where(
            Run.owner_id == scope.owner_id,
            Run.input_blob_key.in_(keys),
            Run.id.not_in(select(Run.id).where(scope.runs())),
        )
        async with self.db.reading() as session:
            return set((await session.execute(query)).scalars())

    async def delete_runs(self, scope: Scope, run_ids: list[str], limit: int) -> dict[str, int]:
        """One bounded step over the given runs of the scope: their change rows, batches and
        entities first, then the runs once nothing hangs off them."""
        counts: dict[str, int] = {}
        mine = select(Run.id).where(scope.runs(), Run.id.in_(run_ids))
        steps: list[tuple[str, Any, Any, Any]] = [
            (
                "run_changes",
                RunChange,
                RunChange.seq,
                select(RunChange.seq).where(RunChange.run_id.in_(mine)).limit(limit),
            ),
            (
                "run_batches",
                RunBatch,
                tuple_(RunBatch.run_id, RunBatch.batch_index),
                select(RunBatch.run_id, RunBatch.batch_index)
                .where(RunBatch.run_id.in_(mine))
                .limit(limit),
            ),
            (
                "run_entities",
                RunEntity,
                tuple_(RunEntity.run_id, RunEntity.entity_key),
                select(RunEntity.run_id, RunEntity.entity_key)
                .where(RunEntity.run_id.in_(mine))
                .limit(limit),
            ),
        ]
        for name, table, key, picked in steps:
            counts[name] = await self._delete(table, key, picked)
        if not any(counts.values()):
            counts["runs"] = await self._delete(Run, Run.id, mine)
        return counts

    # Rows of jobs (and of the owner), child tables first, one bounded batch each.

    async def delete_job_rows(self, scope: Scope, limit: int) -> dict[str, int]:
        """One batch of each table under the scope's jobs; the jobs themselves once the rest
        is empty. Zero everywhere: nothing is left."""
        tasks = select(Task.id).where(scope.tasks())
        steps: list[tuple[str, Any, Any, Any]] = [
            (
                "task_changes",
                TaskChange,
                TaskChange.seq,
                select(TaskChange.seq)
                .where(
                    TaskChange.owner_id == scope.owner_id
                    if scope.kind == "owner"
                    else TaskChange.task_id.in_(tasks)
                )
                .limit(limit),
            ),
            ("tasks", Task, Task.id, select(Task.id).where(scope.tasks()).limit(limit)),
            (
                "job_events",
                JobEvent,
                JobEvent.id,
                select(JobEvent.id)
                .where(scope.job_rows(JobEvent.job_id, JobEvent.owner_id))
                .limit(limit),
            ),
            (
                "artifacts",
                Artifact,
                Artifact.id,
                select(Artifact.id)
                .where(scope.job_rows(Artifact.job_id, Artifact.owner_id))
                .limit(limit),
            ),
        ]
        counts = {name: await self._delete(table, key, pick) for name, table, key, pick in steps}
        if not any(counts.values()):
            # Counters, latest pointers and watchers go with their job (ON DELETE CASCADE).
            picked = select(Job.id).where(scope.jobs()).limit(limit)
            counts["jobs"] = await self._delete(Job, Job.id, picked)
        return counts

    async def delete_prompt_rows(self, scope: Scope, limit: int) -> dict[str, int]:
        """One batch of the scope's result versions, then its prompts once they have none."""
        where = Result.owner_id == scope.owner_id
        if scope.kind == "prompt":
            where = where & (Result.prompt_id == scope.target_id)
        results = select(Result.id).where(where).limit(limit)
        counts = {"results": await self._delete(Result, Result.id, results)}
        if not counts["results"]:
            prompts: ColumnElement[bool] = Prompt.owner_id == scope.owner_id
            if scope.kind == "prompt":
                prompts = prompts & (Prompt.id == scope.target_id)
            counts["prompts"] = await self._delete(
                Prompt, Prompt.id, select(Prompt.id).where(prompts).limit(limit)
            )
        return counts

    async def delete_prompt_exports(self, scope: Scope, limit: int) -> list[str]:
        """One batch of artifacts rendered from the prompt's results, the latest pointers of
        their (job, kind) moved to the newest version left; their blob keys."""
        results = select(Result.id).where(
            Result.owner_id == scope.owner_id, Result.prompt_id == scope.target_id
        )
        picked = (
            select(Artifact.id, Artifact.job_id, Artifact.kind, Artifact.blob_key)
            .where(Artifact.owner_id == scope.owner_id, Artifact.source_result_id.in_(results))
            .limit(limit)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(picked)).all()
            if not rows:
                return []
            await session.execute(delete(Artifact).where(Artifact.id.in_([r.id for r in rows])))
            for job_id, kind in {(r.job_id, r.kind) for r in rows}:
                newest = (
                    await session.execute(
                        select(Artifact.id, Artifact.version)
                        .where(Artifact.job_id == job_id, Artifact.kind == kind)
                        .order_by(Artifact.version.desc())
                        .limit(1)
                    )
                ).first()
                pointer = (ArtifactLatest.job_id == job_id) & (ArtifactLatest.kind == kind)
                if newest is None:
                    await session.execute(delete(ArtifactLatest).where(pointer))
                else:
                    await session.execute(
                        update(ArtifactLatest)
                        .where(pointer)
                        .values(artifact_id=newest.id, version=newest.version, updated_at=utcnow())
                    )
        return [r.blob_key for r in rows]

    async def delete_usage(self, scope: Scope, limit: int) -> int:
        """One batch of an owner's usage ledger, then its limits and spend counters (whose
        subjects name the owner and its keys; before the keys go)."""
        picked = select(UsageEntry.id).where(UsageEntry.owner_id == scope.owner_id).limit(limit)
        deleted = await self._delete(UsageEntry, UsageEntry.id, picked)
        if deleted:
            return deleted
        keys = select(literal("key:") + ApiKey.id).where(ApiKey.owner_id == scope.owner_id)
        async with self.db.transaction() as session:
            for table in (SpendReservation, SpendCounter, SpendLimit):
                subject = table.subject
                result = await session.execute(
                    delete(table)
                    .where((subject == f"owner:{scope.owner_id}") | subject.in_(keys))
                    .execution_options(synchronize_session=False)
                )
                deleted += int(result.rowcount)  # type: ignore[attr-defined]
        return deleted

    async def delete_keys(self, scope: Scope, limit: int) -> int:
        """One batch of an owner's API keys (last: they were revoked when the purge began)."""
        picked = select(ApiKey.id).where(ApiKey.owner_id == scope.owner_id).limit(limit)
        return await self._delete(ApiKey, ApiKey.id, picked)

    async def _delete(self, table: Any, key: Any, picked: Any) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(table).where(key.in_(picked)).execution_options(synchronize_session=False)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]
