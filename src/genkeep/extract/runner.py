"""Executes one extraction run: chunk by the stored parameters, extract batch by batch with
an atomic checkpoint each (I6), then merge the batches in order, streaming (I9).

A batch's extraction is redone only if it was not committed: after a crash, a resumed run
redoes at most the batches that were in flight. Everything a run writes goes through its
lease, and a heartbeat renews it and picks up cancel requests from other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from opentelemetry.trace import Span

from genkeep.blobs import BlobStore
from genkeep.core import identity, interleave
from genkeep.core.redact import client_message
from genkeep.db.models import Run
from genkeep.db.runs import RunLease, RunStore
from genkeep.errors import CorruptBatch, LeaseLost, RunBusy
from genkeep.extract.chunking import batches as make_batches
from genkeep.extract.chunking import chunk_text
from genkeep.extract.dedupe import merge_chunk_results
from genkeep.extract.index import OntologyIndex
from genkeep.extract.model import Chunk, ChunkParams, ChunkResult, Entity, Extractor, Relation
from genkeep.extract.outputs import write_outputs
from genkeep.telemetry import tracing
from genkeep.telemetry.messaging import consumer_span

log = logging.getLogger(__name__)

Progress = Callable[["RunProgress"], None]


@dataclass(frozen=True, slots=True)
class RunProgress:
    total: int
    done: int
    failed: int
    entities: int
    resumed_from: int  # batches already done when this execution started


@dataclass(frozen=True, slots=True)
class RunInputs:
    text: str
    index: OntologyIndex
    ontology_ttl: bytes
    extractor: Extractor


def chunk_params(run: Run) -> ChunkParams:
    """The run's stored chunking parameters; defaults (with a warning) for runs without them."""
    if run.chunk_size is None or run.chunk_overlap is None or run.batch_size is None:
        defaults = ChunkParams()
        log.warning(
            "run %s was stored without chunk parameters; resuming with the defaults "
            "(size %d, overlap %d, batch size %d)",
            run.id,
            defaults.size,
            defaults.overlap,
            defaults.batch_size,
        )
        return defaults
    return ChunkParams(size=run.chunk_size, overlap=run.chunk_overlap, batch_size=run.batch_size)


def encode_result(start: int, result: ChunkResult) -> str:
    """A batch result as canonical JSON: the same result always gives the same text."""
    # Explicit dicts: dataclasses.asdict deep-copies and dominated the per-batch CPU.
    body = {
        "start": start,
        "entities": [_entity_body(e) for e in result.entities],
        "relations": [_relation_body(r) for r in result.relations],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _entity_body(e: Entity) -> dict[str, object]:
    body: dict[str, object] = {
        "class_iri": e.class_iri,
        "surface": e.surface,
        "start": e.start,
        "end": e.end,
        "alignment": e.alignment,
    }
    if e.name is not None:  # only when set: batches stored before it decode the same
        body["name"] = e.name
    return body


def _relation_body(r: Relation) -> dict[str, object]:
    body: dict[str, object] = {
        "property_iri": r.property_iri,
        "subject_key": r.subject_key,
        "object_key": r.object_key,
        "start": r.start,
        "end": r.end,
    }
    if r.cue is not None:
        body["cue"] = r.cue
    if r.literal:
        body["literal"] = True
    return body


def decode_result(text: str) -> tuple[int, ChunkResult]:
    body = json.loads(text)
    return int(body["start"]), ChunkResult(
        entities=[Entity(**e) for e in body["entities"]],
        relations=[Relation(**r) for r in body["relations"]],
    )


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


def batch_span(run_id: str, index: int, chunks: int) -> AbstractContextManager[Span | None]:
    """One batch: extracted and committed with its checkpoint (I6)."""
    attributes = {"genkeep.run.id": run_id, "genkeep.batch.index": index, "genkeep.chunks": chunks}
    return tracing.span("extract batch", attributes=attributes)


class ExtractionRunner:
    def __init__(
        self,
        runs: RunStore,
        blobs: BlobStore,
        *,
        lease_s: float = 30.0,
        concurrency: int = 2,
        holder: str | None = None,
    ) -> None:
        self.runs = runs
        self.blobs = blobs
        self.lease_s = lease_s
        self.concurrency = concurrency
        self.holder = holder or identity.holder()

    async def execute(
        self,
        run: Run,
        inputs: RunInputs,
        cancel: asyncio.Event,
        on_progress: Progress | None = None,
        *,
        resume_cancelled: bool = True,
    ) -> str:
        """Run (or resume) ``run`` to its end; returns the final status.

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
        chunks = chunk_text(
            inputs.text, ChunkParams(params.size, params.overlap, params.batch_size)
        )
        plan = make_batches(chunks, params.batch_size)
        next_start = {chunk.index: after.start for chunk, after in itertools.pairwise(chunks)}
        await self.runs.set_plan(
            lease,
            len(plan),
            {
                "chunk_size": params.size,
                "chunk_overlap": params.overlap,
                "batch_size": params.batch_size,
            },
        )
        for merge in (1, 2):
            stopped = await self._extract_pending(
                run, lease, plan, inputs, next_start, cancel, on_progress
            )
            if stopped is not None:
                return stopped
            try:
                with tracing.span("merge run outputs", attributes={"genkeep.run.id": run.id}):
                    outputs = await write_outputs(
                        self.runs, self.blobs, run, len(plan), inputs.ontology_ttl, decode_result
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

    async def _extract_pending(
        self,
        run: Run,
        lease: RunLease,
        plan: list[list[Chunk]],
        inputs: RunInputs,
        next_start: dict[int, int],
        cancel: asyncio.Event,
        on_progress: Progress | None,
    ) -> str | None:
        """Extract and checkpoint every batch not done yet; the run's end status if it ends."""
        done = await self.runs.done_batches(run.id)
        pending = [i for i in range(len(plan)) if i not in done]
        state = {"done": len(done), "failed": 0}
        entities = run.entities_found

        def report() -> None:
            if on_progress is not None:
                on_progress(
                    RunProgress(len(plan), state["done"], state["failed"], entities, len(done))
                )

        report()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in pending:
            queue.put_nowait(index)

        async def work() -> None:
            nonlocal entities
            while not cancel.is_set():
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    with batch_span(run.id, index, len(plan[index])):
                        result = await self._extract(plan[index], inputs, next_start)
                        encoded = encode_result(plan[index][0].start, result)
                        keys = sorted({e.key for e in result.entities})
                        saved = await self.runs.save_batch(lease, index, encoded, keys)
                    if saved.saved:
                        state["done"] += 1
                        entities = saved.entities
                    if saved.cancel_requested:
                        cancel.set()  # another process asked: stop at this batch boundary
                except (LeaseLost, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    log.warning("run %s batch %d failed: %s", run.id, index, exc)
                    if await self.runs.fail_batch(lease, index, client_message(exc)):
                        state["failed"] += 1
                    else:  # its commit landed before the error (a dropped connection)
                        state["done"] += 1
                report()

        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(self.concurrency, len(pending)))):
                group.create_task(work())
        if cancel.is_set() and state["done"] < len(plan):
            await self.runs.finish(lease, "cancelled")
            return "cancelled"
        if state["failed"]:
            await self.runs.finish(
                lease,
                "failed",
                error=f"{state['failed']} batch(es) failed; `genkeep runs resume` retries them",
            )
            return "failed"
        return None

    async def _extract(
        self, batch: list[Chunk], inputs: RunInputs, next_start: dict[int, int]
    ) -> ChunkResult:
        entities: list[Entity] = []
        relations: list[Relation] = []
        for chunk in batch:
            found = await inputs.extractor.extract(chunk, inputs.index)
            following = next_start.get(chunk.index)
            for entity in found.entities:
                # A mention touching the inner edge of a chunk may be cut short ("New York"
                # of "New York City"); the next chunk, which overlaps it, sees it whole.
                if (
                    following is not None
                    and entity.end == chunk.end
                    and (entity.start is not None and entity.start >= following)
                ):
                    continue
                entities.append(entity)
            relations.extend(found.relations)
        return merge_chunk_results([ChunkResult(entities, relations)])

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
