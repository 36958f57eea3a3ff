"""Deleting a job or a prompt, the owner's deletion records, and the admin's owner purge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from genkeep.api.deps import AuditDep, OwnerDep, ServicesDep, request_trace_id, require_admin
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import documented
from genkeep.db.deletions import DeletionStore
from genkeep.db.jobs import Audit
from genkeep.db.models import Deletion
from genkeep.ops.deletion import delete_job, delete_prompt, purge_owner

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["deletion"])


class DeletionOut(BaseModel):
    """Who deleted what and when: ids, actor and counts, never the content."""

    id: str
    kind: str
    target_id: str
    actor: str
    trace_id: str
    requested_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]

    @classmethod
    def of(cls, deletion: Deletion) -> DeletionOut:
        return cls(
            id=deletion.id,
            kind=deletion.kind,
            target_id=deletion.target_id,
            actor=deletion.actor,
            trace_id=deletion.trace_id,
            requested_at=deletion.requested_at,
            finished_at=deletion.finished_at,
            counts={name: int(count) for name, count in (deletion.counts or {}).items()},
        )


class PurgeOut(BaseModel):
    owner_id: str
    counts: dict[str, int]


@router.delete("/jobs/{job_id}", status_code=204, responses=documented(404))
async def remove_job(
    job_id: str, owner: OwnerDep, audit: AuditDep, services: ServicesDep
) -> Response:
    """Delete the job with its tasks (in-flight ones cancelled first), events, artifacts,
    runs and files; 404 once it is gone. The deletion is recorded in `GET /v1/deletions`."""
    await delete_job(services, owner, job_id, audit)
    return Response(status_code=204)


@router.delete("/prompts/{prompt_id}", status_code=204, responses=documented(404))
async def remove_prompt(
    prompt_id: str, owner: OwnerDep, audit: AuditDep, services: ServicesDep
) -> Response:
    """Delete the prompt, every result version, and the artifacts exported from them."""
    await delete_prompt(services, owner, prompt_id, audit)
    return Response(status_code=204)


@router.get("/deletions", response_model=list[DeletionOut])
async def list_deletions(owner: OwnerDep, services: ServicesDep) -> list[DeletionOut]:
    """The owner's deletions, newest first (the last 100)."""
    found = await DeletionStore(services.database).list_for_owner(owner)
    return [DeletionOut.of(deletion) for deletion in found]


async def admin_audit(request: Request) -> Audit:
    """The admin's audit context; 403 while ``GENKEEP_ADMIN_TOKEN`` is unset, 401 without it."""
    require_admin(request)
    return Audit(actor="admin", trace_id=request_trace_id(request))


@router.delete(
    "/admin/owners/{owner_id}", response_model=PurgeOut, responses=documented(401, 403, 404)
)
async def purge(
    owner_id: str,
    services: ServicesDep,
    admin: Annotated[Audit, Depends(admin_audit)],
) -> PurgeOut:
    """Delete everything of an owner: keys (revoked first), jobs, tasks, artifacts, runs,
    prompts, results and blobs; a purge cut short is finished by calling again."""
    return PurgeOut(owner_id=owner_id, counts=await purge_owner(services, owner_id, admin))
