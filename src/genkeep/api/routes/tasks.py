"""Tasks: idempotent submission, status, cancel, retry, and live progress (SSE)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from genkeep.api.cursor import CursorQuery, paged, position_of
from genkeep.api.deps import AuditDep, OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.job_schemas import TaskCreate, TaskEventOut, TaskOut
from genkeep.api.openapi import documented
from genkeep.api.sse import Interval, LastEventId, change_events, event_responses
from genkeep.db.models import TaskChange
from genkeep.db.tasks import FINISHED, Submission
from genkeep.errors import NotFound

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["tasks"])


@router.post(
    "/jobs/{job_id}/tasks",
    response_model=TaskOut,
    status_code=201,
    responses=documented(
        404,
        409,
        413,
        429,
        extra={200: {"description": "The task this Idempotency-Key already created."}},
    ),
)
async def submit_task(
    job_id: str,
    body: TaskCreate,
    owner: OwnerDep,
    audit: AuditDep,
    services: ServicesDep,
    response: Response,
    idempotency_key: Annotated[
        str, Header(min_length=1, max_length=255, description="Same key + same body = same task.")
    ],
) -> TaskOut:
    """Queue a task; 201 when created, 200 with the original task for a repeated request."""
    response.headers.update(await services.metering.admit_request())
    job = await services.jobs.require(owner, job_id)
    payload = services.catalogue.accept(job, body.kind, body.payload)
    settings = services.settings
    submission = Submission(
        kind=body.kind,
        payload=payload,
        idempotency_key=idempotency_key,
        max_attempts=settings.task_max_attempts,
        timeout=timedelta(seconds=settings.task_timeout_s),
    )
    task, created = await services.tasks.submit(job, submission, audit)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    return TaskOut.of(task)


@router.get("/tasks", response_model=list[TaskOut])
async def list_tasks(
    owner: OwnerDep,
    services: ServicesDep,
    request: Request,
    response: Response,
    job_id: Annotated[str | None, Query(max_length=64, description="Only this job's")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
) -> list[TaskOut]:
    """The owner's tasks, newest first, paged by cursor (Link rel=next)."""
    found = await services.tasks.list_page(
        owner, limit=limit + 1, job_id=job_id, after=position_of(cursor)
    )
    return [TaskOut.of(t) for t in paged(request, response, found, limit)]


@router.get("/tasks/{task_id}", response_model=TaskOut, responses=documented(404))
async def get_task(task_id: str, owner: OwnerDep, services: ServicesDep) -> TaskOut:
    task = await services.tasks.get(owner, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return TaskOut.of(task)


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut, responses=documented(404, 409))
async def cancel_task(
    task_id: str, owner: OwnerDep, audit: AuditDep, services: ServicesDep
) -> TaskOut:
    """Cancel a queued task now, or ask a running one to stop at its next checkpoint."""
    return TaskOut.of(await services.tasks.request_cancel(owner, task_id, audit))


@router.post("/tasks/{task_id}/retry", response_model=TaskOut, responses=documented(404, 409))
async def retry_task(
    task_id: str, owner: OwnerDep, audit: AuditDep, services: ServicesDep
) -> TaskOut:
    """Queue a failed or cancelled task again (409 otherwise)."""
    extra = services.settings.task_max_attempts
    return TaskOut.of(await services.tasks.retry(owner, task_id, extra, audit))


@router.get(
    "/tasks/{task_id}/events",
    response_class=StreamingResponse,
    responses=event_responses("The task is finished"),
)
async def task_events(
    task_id: str,
    request: Request,
    owner: OwnerDep,
    services: ServicesDep,
    interval: Interval = 0.25,
    last_event_id: LastEventId = None,
) -> Response:
    """Server-Sent Events: every change of the task's status, stage or progress, in order,
    once, each with its `id`; ends after the task finishes."""
    task = await services.tasks.get(owner, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    changes = services.task_changes

    async def read(seq: int) -> list[TaskChange]:
        return await changes.after(owner, task_id, seq)

    return await change_events(
        request,
        event="task",
        last_event_id=last_event_id,
        read=read,
        stopped=task.status in FINISHED,
        watch=changes.watch(task_id),
        encode=lambda change: TaskEventOut.of(change).model_dump_json(),
        ends=lambda change: change.status in FINISHED,
        interval=interval,
    )
