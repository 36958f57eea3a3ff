"""A run's batches leased one by one to any worker of the fleet: the claim, the lease's
renewal and release, a leased batch's failure, and what each worker did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.drivers.base import BatchClaim
from genkeep.db.models import Run, RunBatch
from genkeep.db.types import utcnow


@dataclass(frozen=True, slots=True)
class RunLease:
    run_id: str
    token: str


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    """A batch leased to this worker: its commit is fenced by ``token``."""

    run_id: str
    owner_id: str
    index: int
    token: str

    @property
    def lease(self) -> RunLease:
        """The lease a checkpoint of this batch commits under (the batch's, not the run's)."""
        return RunLease(self.run_id, self.token)


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """A run's batches by status: what is left to claim, in flight, done and failed."""

    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class WorkerShare:
    """The batches one worker committed of a run, and the span of time it took them."""

    holder: str
    batches: int
    first_claimed: datetime | None
    last_done: datetime | None


class FleetBatches:
    """The batch-lease half of the run store (``RunStore``), which provides ``db``."""

    db: Database

    async def claim_batch(self, claim: BatchClaim) -> ClaimedBatch | None:
        """Lease one batch of a running run to this worker (see the driver's claim)."""
        row = await self.db.driver.run_batch_claim(claim)
        if row is None:
            return None
        return ClaimedBatch(row["run_id"], row["owner_id"], int(row["batch_index"]), claim.token)

    @completes_when_cancelled
    async def renew_batch(self, claimed: ClaimedBatch, lease_s: float) -> bool:
        """Extend a batch's lease; False when it is no longer this worker's."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(RunBatch)
                .where(*self._batch_leased(claimed))
                .values(lease_expires_at=self.db.driver.now_plus(lease_s))
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    @completes_when_cancelled
    async def release_batch(self, claimed: ClaimedBatch) -> None:
        """Give a batch back untouched (shutting down): another worker claims it at once."""
        async with self.db.transaction() as session:
            await session.execute(
                update(RunBatch)
                .where(*self._batch_leased(claimed))
                .values(status="pending", lease_token=None, lease_expires_at=None)
            )

    @completes_when_cancelled
    async def fail_claimed_batch(self, claimed: ClaimedBatch, error: str) -> bool:
        """Record a leased batch as failed (retried on resume); False if no longer ours."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(RunBatch)
                .where(*self._batch_leased(claimed))
                .values(
                    status="failed",
                    error=error[:2000],
                    attempts=RunBatch.attempts + 1,
                    lease_token=None,
                    lease_expires_at=None,
                    updated_at=utcnow(),
                )
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            await session.execute(
                update(Run)
                .where(Run.id == claimed.run_id)
                .values(batches_failed=Run.batches_failed + 1, updated_at=utcnow())
            )
        return True

    @staticmethod
    def _batch_leased(claimed: ClaimedBatch) -> tuple[Any, ...]:
        return (
            RunBatch.run_id == claimed.run_id,
            RunBatch.batch_index == claimed.index,
            RunBatch.lease_token == claimed.token,
            RunBatch.status == "running",
        )

    async def batch_counts(self, run_id: str) -> BatchCounts:
        query = (
            select(RunBatch.status, func.count())
            .where(RunBatch.run_id == run_id)
            .group_by(RunBatch.status)
        )
        async with self.db.reading() as session:
            found = {status: int(count) for status, count in (await session.execute(query))}
        return BatchCounts(
            pending=found.get("pending", 0),
            running=found.get("running", 0),
            done=found.get("done", 0),
            failed=found.get("failed", 0),
        )

    async def worker_shares(self, owner_id: str, run_id: str) -> list[WorkerShare]:
        """Each worker's committed batches of the run (batches of older runs: no holder)."""
        query = (
            select(
                RunBatch.holder,
                func.count(),
                func.min(RunBatch.claimed_at),
                func.max(RunBatch.updated_at),
            )
            .join(Run, Run.id == RunBatch.run_id)
            .where(Run.owner_id == owner_id, RunBatch.run_id == run_id, RunBatch.status == "done")
            .group_by(RunBatch.holder)
            .order_by(RunBatch.holder)
        )
        async with self.db.reading() as session:
            rows = (await session.execute(query)).all()
        return [WorkerShare(holder or "", int(n), first, last) for holder, n, first, last in rows]
