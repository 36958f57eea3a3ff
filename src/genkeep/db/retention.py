"""Retention: each rule deletes one bounded batch of what has outlived its period (I17).

Every cutoff is the database's clock minus a period, so a process whose clock runs ahead
cannot expire rows early. No rule touches an unfinished task, a stopped run's batches (a
failed or cancelled run can still resume), a job's artifacts or a prompt's latest result.
Rows are picked by primary key and deleted in the same statement, so two sweepers at once
only split the work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.sql import ColumnElement

from genkeep.db.database import Database
from genkeep.db.models import (
    JobEvent,
    LlmAnswer,
    LlmFlight,
    Prompt,
    Result,
    Run,
    RunBatch,
    RunChange,
    Sweep,
    Task,
    TaskChange,
)
from genkeep.db.task_repository import FINISHED

# Called between batches of a long rule: the sweep renews its slot.
Renew = Callable[[], Awaitable[None]]
# A run in one of these states streams no more; only a completed one never resumes.
RUN_STOPPED = ("completed", "failed", "cancelled")


class RetentionStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    def _before(self, seconds: float) -> ColumnElement[datetime]:
        return self.db.driver.now_plus(-seconds)

    async def _delete(self, table: Any, key: Any, picked: Any) -> int:
        """Delete the rows whose ``key`` the ``picked`` query names; how many went.

        The keys are read first and deleted by value: ``DELETE … WHERE key IN (SELECT …)``
        is planned as a scan of the whole table whenever its statistics are stale (a queue
        table that grew since the last ANALYZE), one scan per batch.
        """
        async with self.db.transaction() as session:
            keys = list((await session.execute(picked)).scalars())
            if keys:
                await session.execute(
                    delete(table).where(key.in_(keys)).execution_options(synchronize_session=False)
                )
        return len(keys)

    async def delete_task_changes(
        self, older_s: float, limit: int, renew: Renew | None = None
    ) -> int:
        """Change rows of tasks finished more than ``older_s`` ago, the whole log swept."""
        expired = Task.status.in_(FINISHED) & (Task.finished_at < self._before(older_s))
        return await self._sweep_log(
            TaskChange, TaskChange.task_id, Task, expired, older_s, limit, renew
        )

    async def _sweep_log(
        self,
        log: Any,
        key: Any,
        parent: Any,
        expired: ColumnElement[bool],
        older_s: float,
        limit: int,
        renew: Renew | None,
    ) -> int:
        """Walk a change log in ``seq`` order, ``limit`` rows a transaction, deleting the rows
        whose parent is ``expired``; stop at rows younger than the period (no parent of
        theirs can have expired). How many went.

        By primary key, not by a join: a join's plan on a queue table whose statistics are
        stale (it grew since the last ANALYZE) scanned the whole table for every batch.
        """
        deleted, after = 0, None
        while True:
            async with self.db.transaction() as session:
                young = (log.changed_at > self._before(older_s)).label("young")
                query = select(log.seq, young, key).order_by(log.seq).limit(limit)
                if after is not None:
                    query = query.where(log.seq > after)
                window = (await session.execute(query)).all()
                if not window:
                    break
                parents = {row[2] for row in window}
                gone = set(
                    (
                        await session.execute(
                            select(parent.id).where(parent.id.in_(parents), expired)
                        )
                    ).scalars()
                )
                doomed = [row.seq for row in window if row[2] in gone]
                if doomed:
                    await session.execute(delete(log).where(log.seq.in_(doomed)))
            deleted, after = deleted + len(doomed), window[-1].seq
            if renew is not None:
                await renew()
            if len(window) < limit or all(row.young for row in window):
                break
        return deleted

    async def delete_finished_tasks(self, older_s: float, limit: int) -> int:
        """Tasks finished more than ``older_s`` ago, with their change rows (cascade)."""
        picked = (
            select(Task.id)
            .where(Task.finished_at < self._before(older_s), Task.status.in_(FINISHED))
            .limit(limit)
        )
        return await self._delete(Task, Task.id, picked)

    async def delete_task_events(self, older_s: float, limit: int) -> int:
        """``task.*`` events of jobs' audit logs older than ``older_s`` (opt-in rule)."""
        picked = (
            select(JobEvent.id)
            .where(JobEvent.created_at < self._before(older_s), JobEvent.event_type.like("task.%"))
            .order_by(JobEvent.id)
            .limit(limit)
        )
        return await self._delete(JobEvent, JobEvent.id, picked)

    async def delete_run_changes(
        self, older_s: float, limit: int, renew: Renew | None = None
    ) -> int:
        """Change rows of runs stopped more than ``older_s`` ago; a resume logs anew."""
        expired = Run.status.in_(RUN_STOPPED) & (Run.finished_at < self._before(older_s))
        return await self._sweep_log(
            RunChange, RunChange.run_id, Run, expired, older_s, limit, renew
        )

    async def delete_run_batches(self, older_s: float, limit: int) -> int:
        """Batch results of runs completed more than ``older_s`` ago: export and a resume of a
        completed run read its stored documents, never its batches."""
        picked = (
            select(RunBatch.run_id, RunBatch.batch_index)
            .join(Run, Run.id == RunBatch.run_id)
            .where(Run.status == "completed", Run.finished_at < self._before(older_s))
            .limit(limit)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(picked)).all()
            for run_id in {row.run_id for row in rows}:
                indexes = [row.batch_index for row in rows if row.run_id == run_id]
                await session.execute(
                    delete(RunBatch).where(
                        RunBatch.run_id == run_id, RunBatch.batch_index.in_(indexes)
                    )
                )
        return len(rows)

    async def delete_llm_answers(self, ttl_s: float, limit: int) -> int:
        """LLM-cache entries stored more than ``ttl_s`` ago."""
        picked = (
            select(LlmAnswer.request_hash)
            .where(LlmAnswer.created_at < self._before(ttl_s))
            .limit(limit)
        )
        return await self._delete(LlmAnswer, LlmAnswer.request_hash, picked)

    async def delete_dead_llm_flights(self, older_s: float, limit: int) -> int:
        """LLM-call flights whose leader died (its lease ended ``older_s`` ago) and that no
        caller took over: a live flight renews its lease, a finished one is deleted."""
        ended = LlmFlight.lease_expires_at < self._before(older_s)
        picked = select(LlmFlight.request_hash).where(ended).limit(limit)
        async with self.db.transaction() as session:
            keys = list((await session.execute(picked)).scalars())
            if keys:
                # The lease is checked again: a caller taking the flight over in between
                # has renewed it, and keeps it.
                await session.execute(
                    delete(LlmFlight)
                    .where(LlmFlight.request_hash.in_(keys), ended)
                    .execution_options(synchronize_session=False)
                )
        return len(keys)

    async def delete_results(
        self, profile: str, *, keep_versions: int | None, keep_days: float | None, limit: int
    ) -> int:
        """A profile's result versions beyond the newest ``keep_versions`` or older than
        ``keep_days``; a prompt's latest result is never one of them."""
        expired: list[ColumnElement[bool]] = []
        if keep_versions is not None:
            expired.append(Result.version <= Prompt.latest_version - keep_versions)
        if keep_days is not None:
            expired.append(Result.created_at < self._before(keep_days * 86400))
        if not expired:
            return 0
        condition = expired[0] if len(expired) == 1 else expired[0] | expired[1]
        picked = (
            select(Result.id)
            .join(Prompt, Prompt.id == Result.prompt_id)
            .where(
                Prompt.profile_name == profile,
                Prompt.latest_result_id.is_not(None),
                Result.id != Prompt.latest_result_id,
                condition,
            )
            .limit(limit)
        )
        return await self._delete(Result, Result.id, picked)

    async def claim_sweep(self, name: str, holder: str, interval_s: float) -> bool:
        """Whether this process is the one to sweep now: the slot's last sweep is at least
        ``interval_s`` old by the database's clock (one winner per period)."""
        now = self.db.driver.now()
        async with self.db.transaction() as session:
            await session.execute(
                self.db.driver.insert_ignoring_conflicts(
                    Sweep.__table__,  # type: ignore[arg-type]
                    {"name": name, "swept_at": self._before(interval_s + 1), "holder": ""},
                )
            )
            claimed = await session.execute(
                update(Sweep)
                .where(Sweep.name == name, Sweep.swept_at <= self._before(interval_s))
                .values(swept_at=now, holder=holder)
            )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]

    async def renew_sweep(self, name: str, holder: str) -> None:
        """Move the slot's stamp to now while ``holder`` still sweeps: a sweep longer than the
        period is not joined by a second one (two would deadlock on the same rows)."""
        async with self.db.transaction() as session:
            await session.execute(
                update(Sweep)
                .where(Sweep.name == name, Sweep.holder == holder)
                .values(swept_at=self.db.driver.now())
            )

    async def record_sweep(self, name: str, holder: str) -> None:
        """Stamp the slot (a CronJob's sweep), so workers skip the period it covered."""
        async with self.db.transaction() as session:
            await session.execute(
                self.db.driver.insert_ignoring_conflicts(
                    Sweep.__table__,  # type: ignore[arg-type]
                    {"name": name, "swept_at": self.db.driver.now(), "holder": holder},
                )
            )
            await session.execute(
                update(Sweep)
                .where(Sweep.name == name)
                .values(swept_at=self.db.driver.now(), holder=holder)
            )
