"""Artifacts: atomic version allocation, the latest pointer, retention and the sweep (I5)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from genkeep.db.database import Database
from genkeep.db.jobs import Audit, append_event
from genkeep.db.models import Artifact, ArtifactCounter, ArtifactLatest, Job
from genkeep.db.types import utcnow

# Retention at read time: the latest version plus this many previous ones are listed.
VISIBLE_PREVIOUS = 5


@dataclass(frozen=True, slots=True)
class NewArtifact:
    """A rendered file already in the blob store, waiting for its row and version."""

    kind: str
    blob_key: str
    filename: str
    media_type: str
    size: int
    sha256: str
    is_zip: bool = False
    source_result_id: str | None = None
    source_sha256: str | None = None


class ArtifactStore:
    def __init__(self, database: Database, retention_days: int = 90) -> None:
        self.db = database
        self.retention = timedelta(days=retention_days)

    async def allocate_version(self, session: AsyncSession, job_id: str, kind: str) -> int:
        """The next version for (job, kind), in the caller's transaction: no gaps, no repeats."""
        statement = self.db.driver.bump_counter(
            ArtifactCounter.__table__,  # type: ignore[arg-type]
            {"job_id": job_id, "kind": kind},
            "next_version",
        )
        return int((await session.execute(statement)).scalar_one())

    async def add(
        self,
        session: AsyncSession,
        job: Job | tuple[str, str],
        task_id: str | None,
        new: NewArtifact,
    ) -> Artifact:
        """Allocate a version, insert the artifact and move the latest pointer, atomically.

        ``job`` is a Job or its (id, owner id)."""
        job_id, owner_id = (job.id, job.owner_id) if isinstance(job, Job) else job
        now = utcnow()
        version = await self.allocate_version(session, job_id, new.kind)
        artifact = Artifact(
            id=str(uuid.uuid4()),
            owner_id=owner_id,
            job_id=job_id,
            task_id=task_id,
            kind=new.kind,
            version=version,
            is_zip=new.is_zip,
            blob_key=new.blob_key,
            filename=new.filename,
            media_type=new.media_type,
            size=new.size,
            sha256=new.sha256,
            source_result_id=new.source_result_id,
            source_sha256=new.source_sha256,
            created_at=now,
            expires_at=now + self.retention,
        )
        session.add(artifact)
        await session.flush()
        await session.execute(
            self.db.driver.upsert_if_newer(
                ArtifactLatest.__table__,  # type: ignore[arg-type]
                {"job_id": job_id, "kind": new.kind},
                {"artifact_id": artifact.id, "version": version, "updated_at": now},
                "version",
            )
        )
        return artifact

    async def list_visible(
        self, owner_id: str, job_id: str, kind: str | None = None
    ) -> list[Artifact]:
        """Per kind, the latest version and the 5 before it, newest first."""
        query = select(Artifact).where(Artifact.owner_id == owner_id, Artifact.job_id == job_id)
        if kind is not None:
            query = query.where(Artifact.kind == kind)
        query = query.order_by(Artifact.kind, Artifact.version.desc())
        visible: list[Artifact] = []
        per_kind: dict[str, int] = {}
        async with self.db.reading() as session:
            latest = {
                row.kind: row.version
                for row in (
                    await session.execute(
                        select(ArtifactLatest).where(ArtifactLatest.job_id == job_id)
                    )
                ).scalars()
            }
            for artifact in (await session.execute(query)).scalars():
                if artifact.version > latest.get(artifact.kind, 0):
                    continue  # allocated by a transaction racing this read
                seen = per_kind.get(artifact.kind, 0)
                if seen <= VISIBLE_PREVIOUS:
                    visible.append(artifact)
                per_kind[artifact.kind] = seen + 1
        return visible

    async def get(self, owner_id: str, artifact_id: str) -> Artifact | None:
        query = select(Artifact).where(Artifact.id == artifact_id, Artifact.owner_id == owner_id)
        async with self.db.reading() as session:
            return (await session.execute(query)).scalars().first()

    async def latest(self, owner_id: str, job_id: str, kind: str) -> Artifact | None:
        query = (
            select(Artifact)
            .join(ArtifactLatest, ArtifactLatest.artifact_id == Artifact.id)
            .where(Artifact.owner_id == owner_id, Artifact.job_id == job_id, Artifact.kind == kind)
        )
        async with self.db.reading() as session:
            return (await session.execute(query)).scalars().first()

    async def delete_expired(self, now: datetime, limit: int = 500) -> list[str]:
        """Delete expired artifacts that are not the latest; return their blob keys."""
        latest_ids = select(ArtifactLatest.artifact_id)
        query = (
            select(
                Artifact.id,
                Artifact.blob_key,
                Artifact.job_id,
                Artifact.owner_id,
                Artifact.kind,
                Artifact.version,
            )
            .where(Artifact.expires_at < now, Artifact.id.not_in(latest_ids))
            .limit(limit)
        )
        audit = Audit(actor="sweep", trace_id=uuid.uuid4().hex)
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).all()
            if rows:
                await session.execute(delete(Artifact).where(Artifact.id.in_([r.id for r in rows])))
            for row in rows:
                payload = {"artifact_id": row.id, "kind": row.kind, "version": row.version}
                await append_event(
                    session, (row.job_id, row.owner_id), "artifact.expired", payload, audit
                )
        return [r.blob_key for r in rows]
