"""A run's live progress as Server-Sent Events, from the run's change log.

The log is written by a trigger in whichever process moves the run (this server's run
manager or a ``genkeep worker`` running an ``extract`` task), so the stream follows both.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from genkeep.api.deps import OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.routes.runs import run_progress
from genkeep.api.sse import Interval, LastEventId, change_events, event_responses
from genkeep.db.models import RunChange
from genkeep.db.run_changes import RUN_STOPPED

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["runs"])


class RunEventOut(BaseModel):
    """One change of a run, as the event stream sends it (``seq`` is the SSE ``id``)."""

    id: str
    seq: int
    status: str
    total_batches: int
    batches_done: int
    batches_failed: int
    entities_found: int
    progress: float
    cancel_requested: bool
    error: str | None
    changed_at: datetime

    @classmethod
    def of(cls, change: RunChange) -> RunEventOut:
        total = change.total_batches
        return cls(
            id=change.run_id,
            seq=change.seq,
            status=change.status,
            total_batches=total,
            batches_done=change.batches_done,
            batches_failed=change.batches_failed,
            entities_found=change.entities_found,
            progress=run_progress(change.status, change.batches_done, total),
            cancel_requested=change.cancel_requested,
            error=change.error,
            changed_at=change.changed_at,
        )


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses=event_responses("The run is stopped"),
)
async def run_events(
    run_id: str,
    request: Request,
    owner: OwnerDep,
    services: ServicesDep,
    interval: Interval = 0.25,
    last_event_id: LastEventId = None,
) -> Response:
    """Server-Sent Events: one `run` event per change of status, batch counts, entities or
    cancel request, in order, once; ends when the run stops (completed, failed, cancelled)."""
    run = await services.runs.require(owner, run_id)  # 404 for another owner's run (I3)
    changes = services.run_changes

    async def read(seq: int) -> list[RunChange]:
        return await changes.after(owner, run_id, seq)

    return await change_events(
        request,
        event="run",
        last_event_id=last_event_id,
        read=read,
        stopped=run.status in RUN_STOPPED,
        watch=changes.watch(run_id),
        encode=lambda change: RunEventOut.of(change).model_dump_json(),
        ends=lambda change: change.status in RUN_STOPPED,
        interval=interval,
    )
