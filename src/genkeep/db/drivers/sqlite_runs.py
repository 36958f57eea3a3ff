"""The SQLite driver's run batches: the checkpoint and the fleet's batch claim, each one
write transaction under the database's single writer lock (BEGIN IMMEDIATE)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Insert, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from genkeep.db.drivers.base import (
    WRITE_OPTION,
    BatchCheckpoint,
    BatchClaim,
    CheckpointOutcome,
    DatabaseClock,
    Row,
    UpsertStatements,
)


class SqliteRunBatches(DatabaseClock, UpsertStatements):
    """Run-batch statements of the SQLite driver, which provides the engine and tables."""

    engine: AsyncEngine
    _runs: Table
    _batches: Table
    _entities: Table
    _save_batch: Insert
    _add_entities: Insert

    def _build_batch_statements(self) -> None:
        # Built once with bound parameters: SQLAlchemy then compiles them once, not per batch.
        self._save_batch = self.upsert_unless(
            self._batches,
            {"run_id": bindparam("run_id"), "batch_index": bindparam("batch_index")},
            {
                "status": "done",
                "result": bindparam("result"),
                "checksum": bindparam("checksum"),
                "error": None,
                "attempts": 1,
                "updated_at": bindparam("now"),
                "lease_token": None,
                "lease_expires_at": None,
            },
            {
                "status": None,
                "result": None,
                "checksum": None,
                "error": None,
                "attempts": self._batches.c.attempts + 1,
                "updated_at": bindparam("now"),
                "lease_token": None,
                "lease_expires_at": None,
            },
            unless=self._batches.c.status == "done",
        )
        self._add_entities = self.insert_each_ignoring_conflicts(self._entities, "entity_key")

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            await connection.execution_options(**{WRITE_OPTION: True})
            async with connection.begin():
                yield connection

    async def run_checkpoint(self, checkpoint: BatchCheckpoint) -> CheckpointOutcome:
        batches = self._batches.c
        leased = (
            select(batches.batch_index)
            .where(
                batches.run_id == checkpoint.run_id,
                batches.batch_index == checkpoint.batch_index,
                batches.lease_token == checkpoint.token,
            )
            .exists()
        )
        owner = (self._runs.c.id == checkpoint.run_id) & (
            (self._runs.c.lease_token == checkpoint.token) | leased
        )
        async with self._writing() as connection:
            owned = (
                await connection.execute(select(self._runs.c.cancel_requested).where(owner))
            ).first()
            if owned is None:
                return CheckpointOutcome(False, False, 0, False)
            params = {
                "run_id": checkpoint.run_id,
                "batch_index": checkpoint.batch_index,
                "result": checkpoint.result,
                "checksum": checkpoint.checksum,
                "now": checkpoint.now,
            }
            if (await connection.execute(self._save_batch, params)).first() is None:
                return CheckpointOutcome(True, False, 0, bool(owned.cancel_requested))
            added = 0
            if checkpoint.entity_keys:
                rows = [
                    {
                        "run_id": checkpoint.run_id,
                        "entity_key": key,
                        "first_batch": checkpoint.batch_index,
                    }
                    for key in checkpoint.entity_keys
                ]
                added = len((await connection.execute(self._add_entities, rows)).all())
            counted = (
                await connection.execute(
                    # Ownership was checked above, under the write lock; the batch's own
                    # lease is cleared by now.
                    update(self._runs)
                    .where(self._runs.c.id == checkpoint.run_id)
                    .values(
                        batches_done=self._runs.c.batches_done + 1,
                        entities_found=self._runs.c.entities_found + added,
                        updated_at=checkpoint.now,
                    )
                    .returning(self._runs.c.entities_found, self._runs.c.cancel_requested)
                )
            ).one()
        return CheckpointOutcome(True, True, int(counted[0]), bool(counted[1]))

    def _claimable(self, batches: Any) -> Any:
        expired = (batches.c.status == "running") & (batches.c.lease_expires_at < self.now())
        return (batches.c.status == "pending") | expired

    def _live_leases(self, *, run_id: Any = None, owner_id: Any = None) -> Any:
        """How many batch leases are live, of one run or of one owner's runs."""
        live = self._batches.alias("live")
        runs = self._runs.alias("live_run")
        where = [live.c.status == "running", live.c.lease_expires_at >= self.now()]
        if run_id is not None:
            where.append(live.c.run_id == run_id)
        if owner_id is not None:
            where.append(runs.c.owner_id == owner_id)
        return (
            select(func.count())
            .select_from(live.join(runs, runs.c.id == live.c.run_id))
            .where(*where)
            .scalar_subquery()
        )

    async def run_batch_claim(self, claim: BatchClaim) -> Row | None:
        runs, batches = self._runs, self._batches
        live_run = (
            (runs.c.status == "running")
            & ~runs.c.cancel_requested
            & (runs.c.lease_expires_at > self.now())
        )
        run_limit = func.coalesce(runs.c.concurrency, claim.run_concurrency)
        candidate = select(runs.c.id, runs.c.owner_id).where(
            live_run,
            runs.c.extractor_name.in_(list(claim.extractors)),
            runs.c.id.not_in(list(claim.exclude_runs)),
            select(batches.c.batch_index)
            .where(batches.c.run_id == runs.c.id, self._claimable(batches))
            .exists(),
            self._live_leases(run_id=runs.c.id) < run_limit,
        )
        if claim.run_id is not None:
            candidate = candidate.where(runs.c.id == claim.run_id)
        if claim.not_executed_by is not None:
            candidate = candidate.where(
                runs.c.holder.is_(None) | (runs.c.holder != claim.not_executed_by)
            )
        candidate = candidate.order_by(runs.c.created_at, runs.c.id).limit(1)
        # Looked for outside the write lock first: idle workers poll, and most polls find
        # nothing; only a poll that finds a batch queues for the writer's lock.
        async with self.engine.connect() as reading:
            if (await reading.execute(candidate)).first() is None:
                return None
        async with self._writing() as connection:
            # Again under the lock (BEGIN IMMEDIATE): the counts below are exact.
            found = (await connection.execute(candidate)).first()
            if found is None:
                return None
            run_id, owner_id = found
            if claim.owner_concurrency:
                live = self._live_leases(owner_id=owner_id)
                if (await connection.execute(select(live))).scalar_one() >= (
                    claim.owner_concurrency
                ):
                    return None
            index = (
                await connection.execute(
                    select(batches.c.batch_index)
                    .where(batches.c.run_id == run_id, self._claimable(batches))
                    .order_by(batches.c.batch_index)
                    .limit(1)
                )
            ).scalar_one()
            await connection.execute(
                update(batches)
                .where(batches.c.run_id == run_id, batches.c.batch_index == index)
                .values(
                    status="running",
                    holder=claim.holder,
                    lease_token=claim.token,
                    lease_expires_at=self.now_plus(claim.lease_s),
                    claimed_at=self.now(),
                    updated_at=self.now(),
                )
            )
        return {"run_id": run_id, "owner_id": owner_id, "batch_index": index}
