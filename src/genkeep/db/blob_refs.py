"""What the blob sweep may delete: references to blob keys, read in one snapshot.

An artifact row and its task's ``completed`` commit together. Read in two snapshots, a
commit landing between them makes a new blob look like an orphan of a finished task, and
the sweep deletes what a row now points at. One snapshot sees both or neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from genkeep.core import interleave
from genkeep.db.database import Database
from genkeep.db.models import Artifact, Job, Run, Task


@dataclass(frozen=True, slots=True)
class BlobReferences:
    referenced: set[str]  # keys an artifact row or a job file points at
    task_status: dict[str, str]  # status of each task asked about that still exists
    jobs: set[str]  # jobs asked about that still exist
    runs: set[str]  # runs asked about that still exist


async def read_references(
    database: Database,
    keys: list[str],
    task_ids: list[str],
    job_ids: list[str],
    run_ids: list[str] | None = None,
) -> BlobReferences:
    """Rows pointing at ``keys``, and the tasks and jobs named, as of one moment."""
    async with database.snapshot() as session:
        referenced = set(
            (await session.execute(select(Artifact.blob_key).where(Artifact.blob_key.in_(keys))))
            .scalars()
            .all()
        )
        files = await session.execute(select(Job.file_blob_key).where(Job.file_blob_key.in_(keys)))
        referenced |= {key for key in files.scalars() if key}
        await interleave.point("sweep.between_reads")
        statuses = await session.execute(select(Task.id, Task.status).where(Task.id.in_(task_ids)))
        task_status = {row.id: row.status for row in statuses}
        jobs = set((await session.execute(select(Job.id).where(Job.id.in_(job_ids)))).scalars())
        runs = set(
            (await session.execute(select(Run.id).where(Run.id.in_(run_ids or [])))).scalars()
        )
    return BlobReferences(referenced, task_status, jobs, runs)
