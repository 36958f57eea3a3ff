"""Extraction runs over HTTP: start, progress, cancel, resume, and the graph."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from genkeep.api.cursor import CursorQuery, paged, position_of
from genkeep.api.delivery import DELIVERY_ROUTE, DeliveryQuery, deliver_blob
from genkeep.api.deps import OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import documented
from genkeep.core import identity
from genkeep.core.types import INT64_MAX, NonNegativeInt32, PositiveInt32, RequestModel
from genkeep.db.models import Run
from genkeep.errors import Conflict, NotFound
from genkeep.extract.manager import RunManager
from genkeep.extract.service import stored_extractor_name
from genkeep.services import Services

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["runs"])


class RunCreate(RequestModel):
    text: str = Field(description="The text to extract from (GENKEEP_MAX_RUN_INPUT_BYTES).")
    ontology: str = Field(min_length=1, description="OWL/RDFS: Turtle, RDF/XML or JSON-LD.")
    ontology_name: str = Field(
        "ontology.ttl", max_length=255, description="Its file name; the suffix tells the format."
    )
    input_name: str = Field("input.txt", max_length=255)
    extractor: str | None = Field(
        None, description="builtin, ner or llm; unset: ner when installed, else builtin."
    )
    chunk_size: PositiveInt32 | None = Field(None)
    overlap: NonNegativeInt32 | None = Field(None, description="Smaller than chunk_size.")
    batch_size: PositiveInt32 | None = Field(None)
    concurrency: PositiveInt32 | None = Field(
        None, description="Batches in flight at once across the worker fleet."
    )


RunStatus = Literal["pending", "running", "completed", "failed", "cancelled", "interrupted"]


class RunOut(BaseModel):
    id: str
    status: str
    input_name: str
    input_sha256: str
    ontology_hash: str
    extractor: str
    chunk_size: int | None
    overlap: int | None
    batch_size: int | None
    concurrency: int | None
    total_batches: int
    batches_done: int
    batches_failed: int
    entities_found: int
    progress: float
    cancel_requested: bool
    error: str | None
    outputs: dict[str, Any] | None
    # The process that holds (or last held) the run's lease: the console's run page shows it.
    holder: str | None = None
    created_at: datetime
    updated_at: datetime | None = None
    finished_at: datetime | None

    @classmethod
    def of(cls, run: Run) -> RunOut:
        total = run.total_batches
        progress = run_progress(run.status, run.batches_done, total)
        return cls(
            id=run.id,
            status=run.status,
            input_name=run.input_name,
            input_sha256=run.input_sha256,
            ontology_hash=run.ontology_hash,
            extractor=f"{run.extractor_name} {run.extractor_version}",
            chunk_size=run.chunk_size,
            overlap=run.chunk_overlap,
            batch_size=run.batch_size,
            concurrency=run.concurrency,
            total_batches=total,
            batches_done=run.batches_done,
            batches_failed=run.batches_failed,
            entities_found=run.entities_found,
            progress=progress,
            cancel_requested=run.cancel_requested,
            error=run.error,
            outputs=run.outputs,
            holder=run.holder,
            created_at=run.created_at,
            updated_at=run.updated_at,
            finished_at=run.finished_at,
        )


def run_progress(status: str, batches_done: int, total_batches: int) -> float:
    """Done share of a run, rounded; a completed run is whole, even one of zero batches (I8)."""
    if status == "completed":
        return 1.0
    return round(batches_done / total_batches, 4) if total_batches else 0.0


def _manager(request: Request) -> RunManager:
    manager: RunManager | None = getattr(request.app.state, "run_manager", None)
    if manager is None:
        raise Conflict("this server does not run extractions")
    return manager


async def _start(services: Services, manager: RunManager, run: Run) -> None:
    inputs = await services.extraction.inputs(run)
    runner = services.extraction.runner()
    leased = asyncio.Event()
    started = manager.start(
        run.id, lambda cancel: runner.execute(run, inputs, cancel, on_leased=leased.set)
    )
    # Answered once the run is this process's, so the answer and a stream opened after it
    # see it running (not still cancelled), or once its start failed.
    waiting = asyncio.ensure_future(leased.wait())
    await asyncio.wait({waiting, started}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()


@router.post("/runs", response_model=RunOut, status_code=202, responses=documented(409))
async def create_run(
    body: RunCreate, request: Request, owner: OwnerDep, services: ServicesDep
) -> RunOut:
    """Start an extraction; progress: `GET /v1/runs/{id}`, live: `GET /v1/runs/{id}/events`."""
    run_request = services.extraction.setup.request(
        body.text,
        body.input_name,
        body.ontology.encode("utf-8"),
        body.ontology_name,
        chunk_size=body.chunk_size,
        overlap=body.overlap,
        batch_size=body.batch_size,
    )
    manager = _manager(request)
    run = await services.extraction.create(
        owner, run_request, body.extractor, concurrency=body.concurrency
    )
    await _start(services, manager, run)
    return RunOut.of(await services.runs.require(owner, run.id))


@router.get("/runs", response_model=list[RunOut])
async def list_runs(
    owner: OwnerDep,
    services: ServicesDep,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
    offset: Annotated[
        int, Query(ge=0, le=INT64_MAX, description="Rows to skip (each costs a read; see cursor)")
    ] = 0,
    status: Annotated[RunStatus | None, Query(description="Only runs in this state")] = None,
    extractor: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Only this extractor's runs: builtin, ner, llm or a full name "
            "(genkeep-ner); an unknown name matches none.",
        ),
    ] = None,
) -> list[RunOut]:
    """The owner's runs, newest first (Link rel=next)."""
    stored = None if extractor is None else stored_extractor_name(extractor)
    found = await services.runs.list_runs(
        owner, limit + 1, offset, after=position_of(cursor), status=status, extractor=stored
    )
    return [RunOut.of(r) for r in paged(request, response, found, limit)]


@router.get("/runs/{run_id}", response_model=RunOut, responses=documented(404))
async def get_run(run_id: str, owner: OwnerDep, services: ServicesDep) -> RunOut:
    return RunOut.of(await services.runs.require(owner, run_id))


class WorkerShareOut(BaseModel):
    worker: str
    batches: int
    batches_per_s: float | None


class RunWorkersOut(BaseModel):
    workers: list[WorkerShareOut]
    batches_per_s: float | None


def _rate(batches: int, first: datetime | None, last: datetime | None) -> float | None:
    if first is None or last is None or last <= first:
        return None
    return round(batches / (last - first).total_seconds(), 3)


@router.get("/runs/{run_id}/workers", response_model=RunWorkersOut, responses=documented(404))
async def run_workers(run_id: str, owner: OwnerDep, services: ServicesDep) -> RunWorkersOut:
    """The batches each worker of the fleet committed, and their throughput."""
    await services.runs.require(owner, run_id)
    shares = await services.runs.worker_shares(owner, run_id)
    firsts = [s.first_claimed for s in shares if s.first_claimed is not None]
    lasts = [s.last_done for s in shares if s.last_done is not None]
    return RunWorkersOut(
        workers=[
            WorkerShareOut(
                worker=identity.label(s.holder),
                batches=s.batches,
                batches_per_s=_rate(s.batches, s.first_claimed, s.last_done),
            )
            for s in shares
        ],
        batches_per_s=_rate(
            sum(s.batches for s in shares),
            min(firsts) if firsts else None,
            max(lasts) if lasts else None,
        ),
    )


@router.post("/runs/{run_id}/cancel", response_model=RunOut, responses=documented(404, 409))
async def cancel_run(
    run_id: str, request: Request, owner: OwnerDep, services: ServicesDep
) -> RunOut:
    """Stop at the next batch boundary; the run stays resumable."""
    run = await services.runs.request_cancel(owner, run_id)
    manager: RunManager | None = getattr(request.app.state, "run_manager", None)
    if manager is not None:
        manager.cancel(run_id)
    return RunOut.of(run)


@router.post(
    "/runs/{run_id}/resume", response_model=RunOut, status_code=202, responses=documented(404, 409)
)
async def resume_run(
    run_id: str, request: Request, owner: OwnerDep, services: ServicesDep
) -> RunOut:
    """Continue a cancelled, failed or interrupted run where it stopped."""
    run = await services.runs.require(owner, run_id)
    if run.status == "completed":
        raise Conflict(f"run {run_id} is already completed")
    manager = _manager(request)
    if manager.is_active(run_id) or await services.runs.is_held(owner, run_id):
        raise Conflict(f"run {run_id} is running")
    await _start(services, manager, run)
    return RunOut.of(await services.runs.require(owner, run_id))


@router.get("/runs/{run_id}/graph", **DELIVERY_ROUTE)
async def run_graph(
    run_id: str,
    owner: OwnerDep,
    services: ServicesDep,
    format: Annotated[Literal["turtle", "jsonld", "jsonl"], Query()] = "turtle",
    deliver: DeliveryQuery = "redirect",
) -> Response:
    """302 to a signed URL of the run's graph (Turtle, JSON-LD) or grounded extractions."""
    run = await services.runs.require(owner, run_id)
    if run.status != "completed" or not run.outputs:
        raise NotFound(f"run {run_id} has no graph yet (status {run.status})")
    document = run.outputs[format]
    return await deliver_blob(services, document["key"], document["filename"], deliver)


@router.get("/runs/{run_id}/input", **DELIVERY_ROUTE)
async def run_input(
    run_id: str, owner: OwnerDep, services: ServicesDep, deliver: DeliveryQuery = "redirect"
) -> Response:
    """302 to a signed URL of the text the run extracts from (mention offsets index it)."""
    run = await services.runs.require(owner, run_id)
    return await deliver_blob(services, run.input_blob_key, run.input_name, deliver)
