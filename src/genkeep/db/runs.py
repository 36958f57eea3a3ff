"""Extraction runs: manifest, leased ownership, and batch results with their checkpoint (I6).

A batch result, the new entities it found (the run's registry, I11) and the run's
checkpoint counters commit in one transaction; a lease token fences every write, so a run
is owned by one process at a time and a stale owner commits nothing. Its batches are
leased one by one to any worker of the fleet (``claim_batch``): a batch's commit is fenced
by its own lease token, and a batch whose worker died is claimed again once its lease ends.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genkeep.core import interleave
from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.drivers.base import BatchCheckpoint
from genkeep.db.models import Run, RunBatch, RunEntity
from genkeep.db.paging import Position, newest_first
from genkeep.db.run_batches import FleetBatches, RunLease
from genkeep.db.types import utcnow
from genkeep.errors import Conflict, CorruptBatch, LeaseLost, NotFound

RESUMABLE = ("pending", "running", "failed", "cancelled", "interrupted")
# A cancelled run is taken only by a caller that saw that very cancellation (an explicit
# resume); one cancelled after its executor read it stays cancelled.
_RESUMABLE_UNASKED = tuple(status for status in RESUMABLE if status != "cancelled")


def checksum(result: str) -> str:
    return hashlib.sha256(result.encode("utf-8")).hexdigest()


def is_held(run: Run, now: datetime) -> bool:
    """Whether a live process owns the run: running under a lease that has not expired by
    ``now``, the database's clock read with the row."""
    return (
        run.status == "running"
        and run.lease_token is not None
        and run.lease_expires_at is not None
        and run.lease_expires_at > now
    )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What committing a batch told: whether it was new, the run's entity count, and whether
    another process asked the run to stop (acted on at this batch boundary)."""

    saved: bool
    entities: int
    cancel_requested: bool


class RunStore(FleetBatches):
    def __init__(self, database: Database) -> None:
        self.db = database

    async def create(
        self, owner_id: str, manifest: dict[str, Any], run_id: str | None = None
    ) -> Run:
        now = utcnow()
        run = Run(
            id=run_id or str(uuid.uuid4()),
            owner_id=owner_id,
            status="pending",
            created_at=now,
            updated_at=now,
            total_batches=0,
            batches_done=0,
            batches_failed=0,
            entities_found=0,
            cancel_requested=False,
            **manifest,
        )
        async with self.db.transaction() as session:
            session.add(run)
        return run

    async def get(self, owner_id: str, run_id: str) -> Run | None:
        query = select(Run).where(Run.id == run_id, Run.owner_id == owner_id)
        async with self.db.reading() as session:
            return (await session.execute(query)).scalars().first()

    async def find_with_clock(self, run_id: str) -> tuple[Run | None, datetime]:
        """A run by id alone (a fleet worker serves every owner's), and the database's clock."""
        query = select(Run, self.db.driver.now()).where(Run.id == run_id)
        async with self.db.reading() as session:
            found = (await session.execute(query)).first()
            if found is None:
                now = (await session.execute(select(self.db.driver.now()))).scalar_one()
                return None, now
        return found[0], found[1]

    async def require(self, owner_id: str, run_id: str) -> Run:
        run = await self.get(owner_id, run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        return run

    async def list_runs(
        self,
        owner_id: str,
        limit: int = 50,
        offset: int = 0,
        after: Position | None = None,
        status: str | None = None,
        extractor: str | None = None,
    ) -> list[Run]:
        """The owner's runs, newest first, after ``after`` (keyset) or skipping ``offset``;
        with ``status``, only the runs in that state; with ``extractor``, only its runs."""
        where = [Run.owner_id == owner_id]
        if status is not None:
            where.append(Run.status == status)
        if extractor is not None:
            where.append(Run.extractor_name == extractor)
        query = newest_first(select(Run).where(*where), Run.created_at, Run.id, after)
        query = query.limit(limit).offset(offset)
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    async def is_held(self, owner_id: str, run_id: str) -> bool:
        """Whether a live process owns the run, by the database's clock."""
        query = select(Run, self.db.driver.now()).where(Run.id == run_id, Run.owner_id == owner_id)
        async with self.db.reading() as session:
            found = (await session.execute(query)).first()
        return found is not None and is_held(found[0], found[1])

    async def request_cancel(self, owner_id: str, run_id: str) -> Run:
        """Stop at the next batch boundary (a run not running is cancelled now)."""
        async with self.db.transaction() as session:
            run, now = await self._owned(session, owner_id, run_id)
            if run.status in ("completed", "cancelled"):
                raise Conflict(f"run {run_id} is already {run.status}")
            if is_held(run, now):
                run.cancel_requested = True
            else:  # not running, or its owner died: cancel now and fence the dead owner out
                run.status, run.finished_at = "cancelled", now
                run.lease_token = run.lease_expires_at = None
            run.updated_at = now
        return run

    async def acquire(
        self,
        run_id: str,
        holder: str,
        lease_s: float,
        *,
        cancelled_at: datetime | None = None,
    ) -> RunLease | None:
        """Own a resumable run whose lease is free or expired (by the database's clock);
        None if another process has it, or it was cancelled and ``cancelled_at`` does not
        name that cancellation (only an explicit resume overrides a cancel)."""
        token = str(uuid.uuid4())
        now = self.db.driver.now()
        resumable: Any = Run.status.in_(_RESUMABLE_UNASKED)
        if cancelled_at is not None:
            resumable |= (Run.status == "cancelled") & (Run.finished_at == cancelled_at)
        async with self.db.transaction() as session:
            claimed = (
                await session.execute(
                    update(Run)
                    .where(
                        Run.id == run_id,
                        resumable,
                        Run.lease_token.is_(None) | (Run.lease_expires_at < now),
                    )
                    .values(
                        status="running",
                        holder=holder,
                        lease_token=token,
                        lease_expires_at=self.db.driver.now_plus(lease_s),
                        cancel_requested=False,
                        error=None,
                        updated_at=now,
                    )
                )
            ).rowcount  # type: ignore[attr-defined]
        return RunLease(run_id, token) if claimed == 1 else None

    @completes_when_cancelled
    async def heartbeat(self, lease: RunLease, lease_s: float) -> bool:
        """Renew the lease; True when a cancel was requested. LeaseLost if fenced out."""
        row = await self._fenced(lease, lease_expires_at=self.db.driver.now_plus(lease_s))
        return bool(row.cancel_requested)

    @completes_when_cancelled
    async def ask_cancel(self, lease: RunLease) -> None:
        """Tell the fleet to stop claiming this run's batches (its executor was stopped)."""
        await self._fenced(lease, cancel_requested=True)

    @completes_when_cancelled
    async def set_plan(self, lease: RunLease, total_batches: int, params: dict[str, Any]) -> None:
        await self._fenced(lease, total_batches=total_batches, **params)

    async def open_batches(self, lease: RunLease, total: int, page_size: int = 1000) -> None:
        """Make every batch of the plan claimable: missing rows pending, failed ones again."""
        now = utcnow()
        table: Any = RunBatch.__table__
        insert = self.db.driver.insert_each_ignoring_conflicts(table, "batch_index")
        for first in range(0, total, page_size):
            rows = [
                {
                    "run_id": lease.run_id,
                    "batch_index": index,
                    "status": "pending",
                    "attempts": 0,
                    "updated_at": now,
                }
                for index in range(first, min(first + page_size, total))
            ]
            async with self.db.transaction() as session:
                await self._fenced(lease, session=session)
                await session.execute(insert, rows)
        async with self.db.transaction() as session:
            await self._fenced(lease, session=session)
            await session.execute(
                update(RunBatch)
                .where(RunBatch.run_id == lease.run_id, RunBatch.status == "failed")
                .values(status="pending", lease_token=None, lease_expires_at=None)
            )

    async def done_batches(self, run_id: str, page_size: int = 500) -> set[int]:
        """Indexes of the batches done, each verified against its checksum; a batch that
        fails the check is marked failed, so it is redone."""
        done: set[int] = set()
        after = -1
        while True:
            query = (
                select(RunBatch.batch_index, RunBatch.result, RunBatch.checksum)
                .where(
                    RunBatch.run_id == run_id,
                    RunBatch.status == "done",
                    RunBatch.batch_index > after,
                )
                .order_by(RunBatch.batch_index)
                .limit(page_size)
            )
            async with self.db.reading() as session:
                rows = (await session.execute(query)).all()
            for index, result, stored in rows:
                if result is not None and checksum(result) == stored:
                    done.add(index)
                else:
                    await self.invalidate_batch(run_id, index)
            if len(rows) < page_size:
                return done
            after = rows[-1][0]

    async def break_lease(self, run_id: str, token: str) -> bool:
        """Free a lease whose holder is known to be dead (compare-and-set on its token)."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Run)
                .where(Run.id == run_id, Run.lease_token == token)
                .values(lease_token=None, holder=None, lease_expires_at=None)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    @completes_when_cancelled
    async def save_batch(
        self, lease: RunLease, index: int, result: str, entity_keys: list[str]
    ) -> Checkpoint:
        """Commit a batch result, its new registry entries and the checkpoint, atomically.

        ``saved`` is False when the batch was already done (a concurrent duplicate): nothing
        counts twice and one row remains.
        """
        outcome = await self.db.driver.run_checkpoint(
            BatchCheckpoint(
                run_id=lease.run_id,
                token=lease.token,
                batch_index=index,
                result=result,
                checksum=checksum(result),
                entity_keys=entity_keys,
                now=utcnow(),
            )
        )
        if not outcome.owned:
            raise LeaseLost(f"run {lease.run_id} is owned by another process now")
        await interleave.point("runs.save_batch.committed")
        entities = outcome.entities_found if outcome.saved else 0
        return Checkpoint(outcome.saved, entities, outcome.cancel_requested)

    @completes_when_cancelled
    async def fail_batch(self, lease: RunLease, index: int, error: str) -> bool:
        """Record a failed batch (never as done); it is retried on resume. False when the
        batch is done after all (its commit landed before the error was seen)."""
        now = utcnow()
        async with self.db.transaction() as session:
            existing = await session.get(RunBatch, (lease.run_id, index))
            if existing is not None and existing.status == "done":
                return False
            if existing is None:
                session.add(
                    RunBatch(
                        run_id=lease.run_id,
                        batch_index=index,
                        status="failed",
                        error=error[:2000],
                        attempts=1,
                        updated_at=now,
                    )
                )
            else:
                existing.error, existing.attempts = error[:2000], existing.attempts + 1
                existing.updated_at = now
            await self._fenced(lease, session=session, batches_failed=Run.batches_failed + 1)
        return True

    async def iter_results(
        self, run_id: str, total: int, page_size: int = 50
    ) -> AsyncIterator[tuple[int, str]]:
        """Batch results in order, a page at a time (I9), each checked against its checksum."""
        for first in range(0, total, page_size):
            last = min(first + page_size, total)
            query = (
                select(RunBatch.batch_index, RunBatch.result, RunBatch.checksum)
                .where(
                    RunBatch.run_id == run_id,
                    RunBatch.status == "done",
                    RunBatch.batch_index >= first,
                    RunBatch.batch_index < last,
                )
                .order_by(RunBatch.batch_index)
            )
            async with self.db.reading() as session:
                rows = (await session.execute(query)).all()
            for index, result, stored in rows:
                if result is None or checksum(result) != stored:
                    raise CorruptBatch(
                        f"run {run_id} batch {index} failed its checksum; "
                        "it is redone before the run completes"
                    )
                yield index, result

    async def invalidate_batch(self, run_id: str, index: int) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(RunBatch)
                .where(RunBatch.run_id == run_id, RunBatch.batch_index == index)
                .values(status="failed", error="checksum mismatch")
            )
            await session.execute(
                update(Run).where(Run.id == run_id).values(batches_done=Run.batches_done - 1)
            )

    @completes_when_cancelled
    async def finish(
        self,
        lease: RunLease,
        status: str,
        *,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """End the run's ownership with ``status`` (resumable unless completed)."""
        now = utcnow()
        values: dict[str, Any] = {
            "status": status,
            "holder": None,
            "lease_token": None,
            "lease_expires_at": None,
            "error": error,
        }
        if outputs is not None:
            values["outputs"] = outputs
        if status in ("completed", "failed", "cancelled"):
            values["finished_at"] = now
        async with self.db.transaction() as session:
            await self._fenced(lease, session=session, **values)
            if status == "completed":
                # The registry only serves a resume (I11); a completed run has none to come.
                await session.execute(delete(RunEntity).where(RunEntity.run_id == lease.run_id))

    async def _fenced(
        self,
        lease: RunLease,
        *,
        session: AsyncSession | None = None,
        **values: Any,
    ) -> Any:
        statement = (
            update(Run)
            .where(Run.id == lease.run_id, Run.lease_token == lease.token)
            .values(**values, updated_at=utcnow())
            .returning(Run.cancel_requested, Run.entities_found)
        )
        if session is not None:
            row = (await session.execute(statement)).first()
        else:
            async with self.db.transaction() as own:
                row = (await own.execute(statement)).first()
        if row is None:
            raise LeaseLost(f"run {lease.run_id} is owned by another process now")
        return row

    async def _owned(
        self, session: AsyncSession, owner_id: str, run_id: str
    ) -> tuple[Run, datetime]:
        """The run, locked, and the database's clock read in the same statement."""
        query = (
            select(Run, self.db.driver.now())
            .where(Run.id == run_id, Run.owner_id == owner_id)
            .with_for_update(of=Run)
        )
        found = (await session.execute(query)).first()
        if found is None:
            raise NotFound(f"run {run_id} not found")
        return found[0], found[1]
