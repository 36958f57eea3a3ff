"""Jobs and their append-only event log; every change writes its event in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genkeep.db.database import Database
from genkeep.db.models import Job, JobEvent
from genkeep.db.paging import newest_first
from genkeep.db.types import utcnow
from genkeep.errors import NotFound, PreconditionFailed

# Fields a client may change on a job; the gates are set through them too.
JOB_FIELDS = ("title", "sections", "current_schema", "sections_confirmed", "schema_dirty")


@dataclass(frozen=True, slots=True)
class Audit:
    """Who made a change and the trace it belongs to."""

    actor: str
    trace_id: str
    # The API key of the request (None: none), which a task's generations are metered to.
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class FileInfo:
    name: str
    size: int
    sha256: str
    media_type: str
    blob_key: str


async def append_event(
    session: AsyncSession,
    job: Job | tuple[str, str],
    event_type: str,
    payload: dict[str, Any],
    audit: Audit,
) -> None:
    """Record an event in the caller's transaction, so it commits with the change.

    ``job`` is a Job or its (id, owner id).
    """
    job_id, owner_id = (job.id, job.owner_id) if isinstance(job, Job) else job
    # A Core insert: the ORM's unit of work would flush on every commit of the hot path.
    await session.execute(
        insert(JobEvent).values(
            job_id=job_id,
            owner_id=owner_id,
            event_type=event_type,
            payload=payload,
            trace_id=audit.trace_id,
            actor=audit.actor,
            created_at=utcnow(),
        )
    )


class JobStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    async def create(self, owner_id: str, fields: dict[str, Any], audit: Audit) -> Job:
        now = utcnow()
        job = Job(
            id=str(uuid.uuid4()),
            owner_id=owner_id,
            title=fields.get("title") or "Untitled job",
            sections=fields.get("sections") or [],
            current_schema=fields.get("current_schema"),
            sections_confirmed=bool(fields.get("sections_confirmed", False)),
            schema_dirty=bool(fields.get("schema_dirty", False)),
            version=1,
            created_at=now,
            updated_at=now,
        )
        async with self.db.transaction() as session:
            session.add(job)
            await session.flush()
            await append_event(session, job, "job.created", {"title": job.title}, audit)
        return job

    async def get(self, owner_id: str, job_id: str) -> Job | None:
        async with self.db.reading() as session:
            return await self._owned(session, owner_id, job_id)

    async def require(self, owner_id: str, job_id: str) -> Job:
        job = await self.get(owner_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    async def list_page(
        self, owner_id: str, *, limit: int, after: tuple[str, str] | None = None
    ) -> list[Job]:
        """Newest first; ``after`` is the (created_at iso, id) of the previous page's last job."""
        position = None if after is None else (datetime.fromisoformat(after[0]), after[1])
        query = select(Job).where(Job.owner_id == owner_id)
        query = newest_first(query, Job.created_at, Job.id, position).limit(limit)
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    async def update(
        self,
        owner_id: str,
        job_id: str,
        changes: dict[str, Any],
        audit: Audit,
        *,
        expected_version: int | None,
    ) -> Job:
        """Apply ``changes``; with ``expected_version`` a stale write raises PreconditionFailed."""
        changes = {k: v for k, v in changes.items() if k in JOB_FIELDS}
        async with self.db.transaction() as session:
            job = await self._owned(session, owner_id, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            if changes.get("sections", job.sections) != job.sections:
                # New sections are unconfirmed until the user confirms them again.
                changes.setdefault("sections_confirmed", False)
            if changes.get("current_schema", job.current_schema) != job.current_schema:
                # A changed schema marks derived output stale until someone clears the flag.
                changes.setdefault("schema_dirty", True)
            described = describe_changes(job, changes)
            condition = [Job.id == job_id, Job.owner_id == owner_id]
            if expected_version is not None:
                condition.append(Job.version == expected_version)
            row = (
                await session.execute(
                    update(Job)
                    .where(*condition)
                    .values(**changes, version=Job.version + 1, updated_at=utcnow())
                    .returning(Job.version)
                )
            ).first()
            if row is None:
                raise PreconditionFailed(
                    f"job {job_id} is at version {job.version}, not {expected_version}: "
                    "read it again and reapply your change",
                    current_version=job.version,
                )
            await session.refresh(job)
            payload = {"fields": sorted(changes), "changes": described}
            await append_event(session, job, "job.updated", payload, audit)
        return job

    async def attach_file(self, owner_id: str, job_id: str, file: FileInfo, audit: Audit) -> Job:
        async with self.db.transaction() as session:
            job = await self._owned(session, owner_id, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    file_name=file.name,
                    file_size=file.size,
                    file_sha256=file.sha256,
                    file_media_type=file.media_type,
                    file_blob_key=file.blob_key,
                    version=Job.version + 1,
                    updated_at=utcnow(),
                )
            )
            await session.refresh(job)
            payload = {"name": file.name, "size": file.size, "sha256": file.sha256}
            await append_event(session, job, "job.file_uploaded", payload, audit)
        return job

    async def events(
        self, owner_id: str, job_id: str, *, after: int = 0, limit: int = 100
    ) -> list[JobEvent]:
        query = (
            select(JobEvent)
            .where(JobEvent.owner_id == owner_id, JobEvent.job_id == job_id, JobEvent.id > after)
            .order_by(JobEvent.id)
            .limit(limit)
        )
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    @staticmethod
    async def _owned(session: AsyncSession, owner_id: str, job_id: str) -> Job | None:
        query = select(Job).where(Job.id == job_id, Job.owner_id == owner_id)
        return (await session.execute(query)).scalars().first()


def describe_changes(job: Job, changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What an update changed, for the audit log: from and to for the title and the gates,
    section counts (not their text), and no more than "changed" for a schema."""
    described: dict[str, dict[str, Any]] = {}
    for field, new in changes.items():
        old = getattr(job, field)
        if new == old:
            continue
        if field == "sections":
            described[field] = {"from": len(old or []), "to": len(new or []), "unit": "sections"}
        elif field == "current_schema":
            described[field] = {"changed": True}
        elif field == "title":
            described[field] = {"from": str(old)[:120], "to": str(new)[:120]}
        else:
            described[field] = {"from": old, "to": new}
    return described


async def referenced_file_keys(database: Database, keys: list[str]) -> set[str]:
    """Which of ``keys`` a job's file still names, for the blob sweep."""
    if not keys:
        return set()
    query = select(Job.file_blob_key).where(Job.file_blob_key.in_(keys))
    async with database.reading() as session:
        return {key for key in (await session.execute(query)).scalars() if key is not None}
