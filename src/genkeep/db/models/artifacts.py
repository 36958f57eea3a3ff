"""Versioned artifacts of a job and their counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genkeep.db.drivers.types import UTCDateTime
from genkeep.db.models.base import Base
from genkeep.db.types import utcnow


class Artifact(Base):
    """One version of a job's output of one kind, stored in the blob store (I5)."""

    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("job_id", "kind", "version", name="uq_artifacts_version"),
        Index("ix_artifacts_expiry", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    task_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    is_zip: Mapped[bool] = mapped_column(Boolean, default=False)
    blob_key: Mapped[str] = mapped_column(String(512))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    source_result_id: Mapped[str | None] = mapped_column(String(36))
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ArtifactCounter(Base):
    """The next version per (job, kind), bumped atomically with an upsert."""

    __tablename__ = "artifact_counters"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_version: Mapped[int] = mapped_column(Integer)


class ArtifactLatest(Base):
    """The latest committed artifact per (job, kind)."""

    __tablename__ = "job_artifact_latest"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    artifact_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
