"""One batch of a run, wherever it is extracted: the run's plan, a batch's extraction,
its canonical encoding, and the work of a leased batch (extract, checkpoint, or fail).

The same code serves the process that executes a run and every fleet worker that helps
it, so a batch's stored result does not depend on which process extracted it (I19).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass

from opentelemetry.trace import Span

from genkeep.core.redact import client_message
from genkeep.db.models import Run
from genkeep.db.run_batches import ClaimedBatch
from genkeep.db.runs import RunStore
from genkeep.errors import LeaseLost
from genkeep.extract.chunking import ChunkStream, Resume
from genkeep.extract.dedupe import merge_chunk_results
from genkeep.extract.index import OntologyIndex
from genkeep.extract.model import Chunk, ChunkParams, ChunkResult, Entity, Extractor, Relation
from genkeep.extract.source import RunText
from genkeep.telemetry import tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunInputs:
    text: RunText
    index: OntologyIndex
    ontology_ttl: bytes
    extractor: Extractor
    # The run's stored traceparent: a helper process's batches continue the run's trace.
    trace_context: str | None = None


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


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A run's chunks cut into batches, by its stored parameters (I7): where each batch's
    first chunk starts, so that a batch is cut from its part of the text alone."""

    text: RunText
    params: ChunkParams
    starts: list[Resume | None]  # batch i's first chunk; None: the text's first

    @classmethod
    def of(cls, text: RunText, params: ChunkParams) -> RunPlan:
        """One pass over the text, holding a window of it and a resume point per batch."""
        stream = ChunkStream(text.pieces(None), params)
        starts: list[Resume | None] = []
        at: Resume | None = None
        for count, _ in enumerate(stream):
            if count % params.batch_size == 0:
                starts.append(at)
            if (count + 1) % params.batch_size == 0:
                at = stream.resume_point()
        return cls(text, params, starts)

    @property
    def total(self) -> int:
        return len(self.starts)

    def batch(self, index: int) -> tuple[list[Chunk], dict[int, int]]:
        """Batch ``index``'s chunks, and where the chunk after each of them starts."""
        at = self.starts[index]
        stream = ChunkStream(self.text.pieces(at), self.params, at)
        # One chunk more: a mention at the batch's last inner edge is judged by its start.
        chunks = list(itertools.islice(stream, self.params.batch_size + 1))
        following = {chunk.index: after.start for chunk, after in itertools.pairwise(chunks)}
        return chunks[: self.params.batch_size], following


async def extract_batch(
    batch: list[Chunk], inputs: RunInputs, next_start: dict[int, int]
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


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What working a leased batch came to. ``lost``: another worker has it now."""

    saved: bool = False
    failed: bool = False
    lost: bool = False
    cancel_requested: bool = False


def batch_span(
    run_id: str, index: int, chunks: int, *, parent: str | None = None
) -> AbstractContextManager[Span | None]:
    """One batch: extracted and committed with its checkpoint (I6); ``parent``, a stored
    traceparent to continue (a helper's batch), else a child of the current span."""
    attributes = {"genkeep.run.id": run_id, "genkeep.batch.index": index, "genkeep.chunks": chunks}
    return tracing.span("extract batch", attributes=attributes, parent=parent)


async def work_batch(
    runs: RunStore,
    claimed: ClaimedBatch,
    plan: RunPlan,
    inputs: RunInputs,
    lease_s: float,
    *,
    helping: bool = False,
) -> BatchOutcome:
    """Extract a leased batch and commit it with its checkpoint, renewing its lease meanwhile;
    a failure is recorded on the batch (retried on resume), shutdown gives the batch back.
    ``helping``: not under the run's own span (a fleet worker), so the batch continues the
    trace stored with the run."""
    batch, next_start = plan.batch(claimed.index)
    renewal = asyncio.create_task(_renew(runs, claimed, lease_s))
    parent = inputs.trace_context if helping else None
    try:
        with batch_span(claimed.run_id, claimed.index, len(batch), parent=parent):
            result = await extract_batch(batch, inputs, next_start)
            encoded = encode_result(batch[0].start, result)
            keys = sorted({e.key for e in result.entities})
            saved = await runs.save_batch(claimed.lease, claimed.index, encoded, keys)
        return BatchOutcome(saved=saved.saved, cancel_requested=saved.cancel_requested)
    except LeaseLost:
        log.warning("run %s batch %d: taken over by another worker", claimed.run_id, claimed.index)
        return BatchOutcome(lost=True)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await runs.release_batch(claimed)
        raise
    except Exception as exc:
        log.warning("run %s batch %d failed: %s", claimed.run_id, claimed.index, exc)
        failed = await runs.fail_claimed_batch(claimed, client_message(exc))
        return BatchOutcome(failed=failed, lost=not failed)
    finally:
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal


async def _renew(runs: RunStore, claimed: ClaimedBatch, lease_s: float) -> None:
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            if not await runs.renew_batch(claimed, lease_s):
                return  # taken over: its commit will be fenced out
        except Exception:
            log.exception(
                "renewing run %s batch %d failed; retrying", claimed.run_id, claimed.index
            )
