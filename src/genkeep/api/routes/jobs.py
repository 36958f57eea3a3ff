"""Jobs: create, list, read, update with optimistic concurrency, upload a file, events."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from genkeep.api.cursor import decode_cursor, encode_cursor
from genkeep.api.deps import AuditDep, OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute, allow_body
from genkeep.api.job_schemas import EventOut, JobCreate, JobOut, JobPage, JobUpdate
from genkeep.api.openapi import documented
from genkeep.api.preconditions import matched_version
from genkeep.core.types import NonNegativeInt64
from genkeep.db.jobs import FileInfo
from genkeep.errors import BadInput

log = logging.getLogger(__name__)

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["jobs"])

# The media_type column's width; a longer Content-Type is refused, not truncated.
MAX_MEDIA_TYPE = 128


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
    after = None
    if cursor:
        created, job_id = decode_cursor(cursor)
        after = (created.isoformat(), job_id)
    jobs = await services.jobs.list_page(owner, limit=limit + 1, after=after)
    next_cursor = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        next_cursor = encode_cursor(jobs[-1].created_at, jobs[-1].id)
    return JobPage(items=[JobOut.of(j) for j in jobs], next_cursor=next_cursor)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=documented(404))
async def get_job(
    job_id: str, owner: OwnerDep, services: ServicesDep, response: Response
) -> JobOut:
    job = await services.jobs.require(owner, job_id)
    response.headers["ETag"] = _etag(job.version)
    return JobOut.of(job)


@router.patch("/jobs/{job_id}", response_model=JobOut, responses=documented(404, 412))
async def update_job(
    job_id: str,
    body: JobUpdate,
    owner: OwnerDep,
    audit: AuditDep,
    services: ServicesDep,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(
            description='The ETag of the version read, e.g. "3"; a list of them, or * for any '
            "(RFC 9110). A weak tag (W/) never matches."
        ),
    ] = None,
) -> JobOut:
    """Change a job; a stale If-Match (or body version) answers 412 and changes nothing."""
    expected = body.version
    changes = body.model_dump(mode="json", exclude_unset=True, exclude={"version"})
    current = await services.jobs.require(owner, job_id)
    if if_match is not None:
        # The version matched is still checked by the write: a change in between is 412.
        expected = matched_version(if_match, current.version)
    job = await services.jobs.update(owner, job_id, changes, audit, expected_version=expected)
    response.headers["ETag"] = _etag(job.version)
    return JobOut.of(job)


@router.put(
    "/jobs/{job_id}/file",
    response_model=JobOut,
    responses=documented(404, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file's bytes (not empty); Content-Type is kept as its type.",
            "content": {
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary", "minLength": 1}
                }
            },
        }
    },
)
async def upload_file(
    job_id: str,
    request: Request,
    owner: OwnerDep,
    audit: AuditDep,
    services: ServicesDep,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
) -> JobOut:
    """Upload the job's file as the raw request body; its metadata is kept on the job."""
    settings = services.settings
    allow_body(request, settings.max_upload_bytes)
    job = await services.jobs.require(owner, job_id)
    # A name with no last segment ("a/", "..") still uploads; it is stored as "upload".
    safe_name = os.path.basename(filename.replace("\\", "/"))
    if safe_name in ("", ".", ".."):
        safe_name = "upload"
    media_type = request.headers.get("content-type", "application/octet-stream")
    if len(media_type) > MAX_MEDIA_TYPE:
        raise BadInput(f"Content-Type is longer than {MAX_MEDIA_TYPE} characters")
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile() as spool:
        async for chunk in request.stream():
            size += len(chunk)
            digest.update(chunk)
            spool.write(chunk)
        spool.flush()
        if size == 0:
            raise BadInput("the uploaded file is empty")
        key = file_blob_key(owner, job_id, digest.hexdigest())
        await services.blobs.put_file(key, Path(spool.name), content_type=media_type)
    info = FileInfo(safe_name, size, digest.hexdigest(), media_type, key)
    try:
        updated = await services.jobs.attach_file(owner, job_id, info, audit)
    except BaseException:
        # Nothing refers to this upload's key but this request: it goes with the request.
        await services.blobs.delete(key)
        raise
    if job.file_blob_key and job.file_blob_key != key:
        # The replaced file; one a concurrent upload replaced is left to `genkeep ops sweep`.
        try:
            await services.blobs.delete(job.file_blob_key)
        except Exception:
            log.warning("could not delete a replaced job file; the sweep will", exc_info=True)
    return JobOut.of(updated)


def file_blob_key(owner: str, job_id: str, sha256: str) -> str:
    """A key of its own per upload; it starts with the upload time, the sweep's grace clock."""
    return f"owners/{owner}/jobs/{job_id}/files/{int(time.time())}-{uuid.uuid4().hex[:12]}-{sha256}"


@router.get("/jobs/{job_id}/events", response_model=list[EventOut], responses=documented(404))
async def job_events(
    job_id: str,
    owner: OwnerDep,
    services: ServicesDep,
    after: Annotated[NonNegativeInt64, Query(description="Return events after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[EventOut]:
    """The job's audit log, oldest first."""
    await services.jobs.require(owner, job_id)
    return [
        EventOut.of(e) for e in await services.jobs.events(owner, job_id, after=after, limit=limit)
    ]
