"""Jobs: create, list, read, update with optimistic concurrency, upload a file, events."""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from genkeep.api.deps import AuditDep, OwnerDep, ServicesDep
from genkeep.api.job_schemas import EventOut, JobCreate, JobOut, JobPage, JobUpdate
from genkeep.db.jobs import FileInfo
from genkeep.errors import BadInput, UploadTooLarge

router = APIRouter(prefix="/v1", tags=["jobs"])


def _etag(version: int) -> str:
    return f'"{version}"'


@router.post("/jobs", response_model=JobOut, status_code=201)
async def create_job(
    body: JobCreate, owner: OwnerDep, audit: AuditDep, services: ServicesDep, response: Response
) -> JobOut:
    job = await services.jobs.create(owner, body.model_dump(mode="json"), audit)
    response.headers["ETag"] = _etag(job.version)
    return JobOut.of(job)


@router.get("/jobs", response_model=JobPage)
async def list_jobs(
    owner: OwnerDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JobPage:
    after = _decode_cursor(cursor) if cursor else None
    jobs = await services.jobs.list_page(owner, limit=limit + 1, after=after)
    next_cursor = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        last = jobs[-1]
        raw = f"{last.created_at.isoformat()}|{last.id}".encode()
        next_cursor = base64.urlsafe_b64encode(raw).decode()
    return JobPage(items=[JobOut.of(j) for j in jobs], next_cursor=next_cursor)


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        created, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        datetime.fromisoformat(created)
    except ValueError:
        raise BadInput("invalid cursor") from None
    return created, job_id


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(
    job_id: str, owner: OwnerDep, services: ServicesDep, response: Response
) -> JobOut:
    job = await services.jobs.require(owner, job_id)
    response.headers["ETag"] = _etag(job.version)
    return JobOut.of(job)


@router.patch("/jobs/{job_id}", response_model=JobOut)
async def update_job(
    job_id: str,
    body: JobUpdate,
    owner: OwnerDep,
    audit: AuditDep,
    services: ServicesDep,
    response: Response,
    if_match: Annotated[str | None, Header(description='Expected version, e.g. "3"')] = None,
) -> JobOut:
    """Change a job; a stale If-Match (or body version) answers 412 and changes nothing."""
    expected = body.version
    if if_match is not None:
        try:
            expected = int(if_match.strip().removeprefix("W/").strip('"'))
        except ValueError:
            raise BadInput(f"If-Match must be a version number, got {if_match!r}") from None
    changes = body.model_dump(mode="json", exclude_unset=True, exclude={"version"})
    for name in ("title", "sections", "sections_confirmed", "schema_dirty"):
        if name in changes and changes[name] is None:
            raise BadInput(f"{name} cannot be null")
    await services.jobs.require(owner, job_id)
    job = await services.jobs.update(owner, job_id, changes, audit, expected_version=expected)
    response.headers["ETag"] = _etag(job.version)
    return JobOut.of(job)


@router.put("/jobs/{job_id}/file", response_model=JobOut)
async def upload_file(
    job_id: str,
    request: Request,
    owner: OwnerDep,
    audit: AuditDep,
    services: ServicesDep,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
) -> JobOut:
    """Upload the job's file as the raw request body; its metadata is kept on the job."""
    await services.jobs.require(owner, job_id)
    safe_name = os.path.basename(filename.replace("\\", "/"))
    if not safe_name or safe_name in (".", ".."):
        raise BadInput("filename must name a file")
    media_type = request.headers.get("content-type", "application/octet-stream")
    limit = services.settings.max_upload_bytes
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile() as spool:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(f"uploads are limited to {limit} bytes")
            digest.update(chunk)
            spool.write(chunk)
        spool.flush()
        if size == 0:
            raise BadInput("the uploaded file is empty")
        key = f"owners/{owner}/jobs/{job_id}/files/{digest.hexdigest()}"
        await services.blobs.put_file(key, Path(spool.name), content_type=media_type)
    info = FileInfo(safe_name, size, digest.hexdigest(), media_type, key)
    return JobOut.of(await services.jobs.attach_file(owner, job_id, info, audit))


@router.get("/jobs/{job_id}/events", response_model=list[EventOut])
async def job_events(
    job_id: str,
    owner: OwnerDep,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, description="Return events after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[EventOut]:
    """The job's audit log, oldest first."""
    await services.jobs.require(owner, job_id)
    return [
        EventOut.of(e) for e in await services.jobs.events(owner, job_id, after=after, limit=limit)
    ]
