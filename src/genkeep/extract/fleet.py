"""A fleet worker: extracts batches of any running run, leased one at a time through the
database, so one long run spreads over every worker process on any machine (I19).

Each slot loops: claim a batch (the driver's claim: the run's and the owner's
concurrency, the run's executor alive, no cancel asked), extract it, commit it with its
checkpoint under the batch's lease. An idle slot polls. A run's inputs are read once per
process, when it first claims one of the run's batches, and dropped when the run leaves
the process's few most recent runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from genkeep.core import identity
from genkeep.db.drivers.base import BatchClaim
from genkeep.db.models import Run
from genkeep.db.run_batches import ClaimedBatch
from genkeep.db.runs import RunStore
from genkeep.extract.batches import RunInputs, RunPlan, chunk_params, work_batch

log = logging.getLogger(__name__)

PrepareInputs = Callable[[Run], Awaitable[RunInputs]]
_RECENT_RUNS = 4


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """How a fleet worker claims: lease, idle poll, slots and the concurrency defaults."""

    lease_s: float
    poll_s: float
    slots: int
    run_concurrency: int
    owner_concurrency: int = 0


class FleetWorker:
    """Works batches of running runs (or of ``run_id`` only) in ``settings.slots`` slots."""

    def __init__(
        self,
        runs: RunStore,
        prepare: PrepareInputs,
        extractors: Sequence[str],
        settings: FleetSettings,
        *,
        holder: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.runs = runs
        self.prepare = prepare
        self.extractors = list(extractors)
        self.settings = settings
        self.holder = (holder or identity.process_id())[:128]
        self.run_id = run_id
        self.committed = 0
        self._prepared: OrderedDict[str, tuple[RunPlan, RunInputs]] = OrderedDict()
        self._preparing: dict[str, asyncio.Future[tuple[RunPlan, RunInputs]]] = {}
        self._refused: set[str] = set()  # runs this process cannot extract (logged once)
        self._executor_seen = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set (or, for one run, until it no longer runs)."""
        self._executor_seen = asyncio.get_running_loop().time()
        async with asyncio.TaskGroup() as group:
            for _ in range(self.settings.slots):
                group.create_task(self._slot(stop))

    async def _slot(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                claimed = await self.runs.claim_batch(self._claim())
                if claimed is not None:
                    await self._work(claimed)
                    continue
                if self.run_id is not None and not await self._run_goes_on():
                    return
            except Exception:
                # The database may be down for a moment: a batch in flight is fenced, and
                # its lease ends if it could not be given back.
                log.exception("working a batch failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_s)

    def _claim(self) -> BatchClaim:
        return BatchClaim(
            holder=self.holder,
            token=str(uuid.uuid4()),
            lease_s=self.settings.lease_s,
            extractors=self.extractors,
            run_concurrency=self.settings.run_concurrency,
            owner_concurrency=self.settings.owner_concurrency,
            run_id=self.run_id,
            exclude_runs=sorted(self._refused),
            # Helping a run: not this process's own (those go at its runner's concurrency).
            not_executed_by=None if self.run_id is not None else identity.holder(),
        )

    async def _run_goes_on(self) -> bool:
        """Whether the one run this worker serves may still have batches for it: not if it
        ended, or if its executor died (a resume starts helpers of its own)."""
        assert self.run_id is not None
        found, now = await self.runs.find_with_clock(self.run_id)
        if found is None or found.status not in ("pending", "running"):
            return False
        if found.status == "pending":
            return True
        if found.lease_expires_at is not None and found.lease_expires_at > now:
            self._executor_seen = asyncio.get_running_loop().time()
        # A lapse of one lease may be a busy executor's late heartbeat; two are not.
        lapsed = asyncio.get_running_loop().time() - self._executor_seen
        return lapsed < 2 * self.settings.lease_s and found.batches_done < max(
            found.total_batches, 1
        )

    async def _work(self, claimed: ClaimedBatch) -> None:
        try:
            plan, inputs = await self._inputs(claimed)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.runs.release_batch(claimed)
            raise
        except Exception as exc:
            log.warning("run %s cannot be extracted here (%s); leaving it", claimed.run_id, exc)
            self._refused.add(claimed.run_id)
            await self.runs.release_batch(claimed)
            return
        outcome = await work_batch(
            self.runs, claimed, plan, inputs, self.settings.lease_s, helping=True
        )
        if outcome.saved:
            self.committed += 1

    async def _inputs(self, claimed: ClaimedBatch) -> tuple[RunPlan, RunInputs]:
        found = self._prepared.get(claimed.run_id)
        if found is not None:
            self._prepared.move_to_end(claimed.run_id)
            return found
        # One read of the run's inputs however many slots claim its batches at once.
        pending = self._preparing.get(claimed.run_id)
        if pending is None:
            pending = asyncio.ensure_future(self._prepare(claimed))
            self._preparing[claimed.run_id] = pending
            pending.add_done_callback(lambda _: self._preparing.pop(claimed.run_id, None))
        return await asyncio.shield(pending)

    async def _prepare(self, claimed: ClaimedBatch) -> tuple[RunPlan, RunInputs]:
        run = await self.runs.require(claimed.owner_id, claimed.run_id)
        inputs = await self.prepare(run)
        plan = await asyncio.to_thread(RunPlan.of, inputs.text, chunk_params(run))
        self._prepared[run.id] = (plan, inputs)
        while len(self._prepared) > _RECENT_RUNS:
            self._prepared.popitem(last=False)
        return plan, inputs
