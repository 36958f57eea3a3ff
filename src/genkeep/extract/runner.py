"""Executes one extraction run: chunk by the stored parameters, extract batch by batch with
an atomic checkpoint each (I6), then merge the batches in order, streaming (I9).

The process that executes a run holds the run's lease; its batches are leased one by one
to it and to any fleet worker (extract/fleet.py) through the database, within the run's
concurrency. When every batch is done, this process merges them, once, in batch order.
A batch's extraction is redone only if it was not committed: after a crash, a resumed run
redoes at most the batches that were in flight. A heartbeat renews the run's lease and
picks up cancel requests from other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from opentelemetry.trace import Span

from genkeep.blobs import BlobStore
from genkeep.core import identity, interleave
from genkeep.core.redact import client_message
from genkeep.db.drivers.base import BatchClaim
from genkeep.db.models import Run
from genkeep.db.run_batches import BatchCounts, RunLease
from genkeep.db.runs import RunStore
from genkeep.errors import CorruptBatch, LeaseLost, RunBusy
from genkeep.extract.batches import (
    RunInputs,
    RunPlan,
    chunk_params,
    decode_result,
    encode_result,
    work_batch,
)
from genkeep.extract.outputs import write_outputs
from genkeep.telemetry import tracing
from genkeep.telemetry.messaging import consumer_span

__all__ = [
    "ExtractionRunner",
    "Progress",
    "RunInputs",
    "RunProgress",
    "chunk_params",
    "decode_result",
    "encode_result",
]

log = logging.getLogger(__name__)

Progress = Callable[["RunProgress"], None]


@dataclass(frozen=True, slots=True)
class RunProgress:
    total: int
    done: int
    failed: int
    entities: int
    resumed_from: int  # batches already done when this execution started


def run_span(run: Run, holder: str) -> AbstractContextManager[Span | None]:
    """One execution of a run: it continues the trace the run was created in (I18)."""
    return consumer_span(
        run.extractor_name,
        run.id,
        submitted=run.trace_context,
        previous_attempt=None,
        attempt=0,
        destination="runs",
        worker_id=holder,
    )


class ExtractionRunner:
    def __init__(
        self,
        runs: RunStore,
        blobs: BlobStore,
        *,
        lease_s: float = 30.0,
        concurrency: int = 2,
        holder: str | None = None,
        run_concurrency: int = 16,
        owner_concurrency: int = 0,
        poll_s: float = 0.5,
    ) -> None:
        self.runs = runs
        self.blobs = blobs
        self.lease_s = lease_s
        self.concurrency = concurrency  # batches this process extracts at once
        self.run_concurrency = run_concurrency  # the fleet's, unless the run sets its own
        self.owner_concurrency = owner_concurrency
        self.poll_s = poll_s
        self.holder = holder or identity.holder()

    async def execute(
        self,
        run: Run,
        inputs: RunInputs,
        cancel: asyncio.Event,
        on_progress: Progress | None = None,
        *,
        resume_cancelled: bool = True,
        on_leased: Callable[[], None] | None = None,
    ) -> str:
        """Run (or resume) ``run`` to its end; returns the final status. ``on_leased`` is
        called once the run is this process's (its status reads running).

        ``run`` is the state the caller read: a run it saw cancelled is resumed when
        ``resume_cancelled`` (an explicit resume); one cancelled since is left alone, and so
        is one completed since.
        """
        seen_cancel = resume_cancelled and run.status == "cancelled"
        cancelled_at = run.finished_at if seen_cancel else None
        await interleave.point("runs.before_acquire")
        lease = await self.runs.acquire(
            run.id, self.holder, self.lease_s, cancelled_at=cancelled_at
        )
        if lease is None and await self._holder_is_dead(run.owner_id, run.id):
            lease = await self.runs.acquire(
                run.id, self.holder, self.lease_s, cancelled_at=cancelled_at
            )
        if lease is None:
            current = await self.runs.get(run.owner_id, run.id)
            if current is not None and current.status in ("cancelled", "completed"):
                return current.status
            raise RunBusy(
                f"run {run.id} is being executed by another process; if that process died, "
                f"resume again after its lease expires (at most {self.lease_s:g}s)"
            )
        if on_leased is not None:
            on_leased()
        heartbeat = asyncio.create_task(self._heartbeat(lease, cancel))
        try:
            with run_span(run, self.holder) as span:
                status = await self._execute(run, lease, inputs, cancel, on_progress)
                if span is not None:
                    span.set_attribute("genkeep.run.status", status)
                return status
        except LeaseLost:
            log.warning("run %s: lease taken over; stopping", run.id)
            return "interrupted"
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.runs.finish(lease, "interrupted")
            raise
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self.runs.finish(lease, "failed", error=client_message(exc))
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _execute(
        self,
        run: Run,
        lease: RunLease,
        inputs: RunInputs,
        cancel: asyncio.Event,
        on_progress: Progress | None,
    ) -> str:
        params = chunk_params(run)
        # Off the loop: one pass over the whole input (the heartbeat keeps the lease).
        plan = await asyncio.to_thread(RunPlan.of, inputs.text, params)
        total = plan.total
        await self.runs.set_plan(
            lease,
            total,
            {
                "chunk_size": params.size,
                "chunk_overlap": params.overlap,
                "batch_size": params.batch_size,
            },
        )
        for merge in (1, 2):
            stopped = await self._extract_pending(run, lease, plan, inputs, cancel, on_progress)
            if stopped is not None:
                return stopped
            try:
                with tracing.span("merge run outputs", attributes={"genkeep.run.id": run.id}):
                    outputs = await write_outputs(
                        self.runs, self.blobs, run, total, inputs.ontology_ttl, decode_result
                    )
            except CorruptBatch as exc:
                if merge == 2:
                    raise
                # The next round's done_batches marks the batch failed, so it is redone.
                log.warning("%s; redoing it before merging again", exc.detail)
                continue
            await self.runs.finish(lease, "completed", outputs=outputs)
            return "completed"
        raise AssertionError("unreachable: the second merge returns or raises")

    def _claim(self, run: Run) -> BatchClaim:
        return BatchClaim(
            holder=identity.label(self.holder)[:128],
            token=str(uuid.uuid4()),
            lease_s=self.lease_s,
            extractors=[run.extractor_name],
            run_concurrency=self.run_concurrency,
            owner_concurrency=self.owner_concurrency,
            run_id=run.id,
        )

    async def _extract_pending(
        self,
        run: Run,
        lease: RunLease,
        plan: RunPlan,
        inputs: RunInputs,
        cancel: asyncio.Event,
        on_progress: Progress | None,
    ) -> str | None:
        """Work the run's batches with the fleet until every one is done; the run's end
        status if it ends first (cancelled, or failed batches)."""
        total = plan.total
        resumed_from = len(await self.runs.done_batches(run.id))
        await self.runs.open_batches(lease, total)

        async def report() -> BatchCounts:
            counts = await self.runs.batch_counts(run.id)
            current = await self.runs.get(run.owner_id, run.id)
            if current is not None and current.cancel_requested:
                cancel.set()  # asked from another process: stop at this batch boundary
            if on_progress is not None:
                entities = current.entities_found if current is not None else 0
                on_progress(RunProgress(total, counts.done, counts.failed, entities, resumed_from))
            return counts

        async def work() -> None:
            while not cancel.is_set():
                claimed = await self.runs.claim_batch(self._claim(run))
                if claimed is None:
                    return  # none free now: taken by the fleet, done, or over a limit
                outcome = await work_batch(self.runs, claimed, plan, inputs, self.lease_s)
                if outcome.cancel_requested:
                    cancel.set()
                await report()  # the fleet's progress, read back: callers stop on it

        counts = await report()
        while True:
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, self.concurrency)):
                    group.create_task(work())
            counts = await report()
            if cancel.is_set():
                return await self._stop(run, lease, total, report)
            if counts.done == total:
                return None
            if counts.pending == 0 and counts.running == 0:
                await self.runs.finish(
                    lease,
                    "failed",
                    error=f"{counts.failed} batch(es) failed; `genkeep runs resume` retries them",
                )
                return "failed"
            # Batches in flight in other workers, or over a concurrency limit: look again.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cancel.wait(), self.poll_s)

    async def _stop(
        self,
        run: Run,
        lease: RunLease,
        total: int,
        report: Callable[[], Awaitable[BatchCounts]],
    ) -> str | None:
        """Cancelled: every worker stops at its next batch boundary (no more claims); the
        run ends once the batches in flight are committed, or their leases end."""
        await self.runs.ask_cancel(lease)
        deadline = asyncio.get_running_loop().time() + self.lease_s
        counts = await report()
        while counts.running and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(self.poll_s)
            counts = await report()
        if counts.done == total:
            return None  # everything landed anyway: merge
        await self.runs.finish(lease, "cancelled")
        return "cancelled"

    async def _holder_is_dead(self, owner_id: str, run_id: str) -> bool:
        """A holder this process can prove gone (same kernel and PID namespace, its process
        exited) frees its lease now; any other waits its lease out."""
        current = await self.runs.get(owner_id, run_id)
        if current is None or current.holder is None or current.lease_token is None:
            return False
        if not identity.is_gone(current.holder):
            return False
        log.warning("run %s: its holder %s is gone; taking over", run_id, current.holder)
        return await self.runs.break_lease(run_id, current.lease_token)

    async def _heartbeat(self, lease: RunLease, cancel: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if await self.runs.heartbeat(lease, self.lease_s):
                    cancel.set()
            except LeaseLost:
                cancel.set()
                return
            except Exception:
                log.exception("run %s heartbeat failed; retrying", lease.run_id)
