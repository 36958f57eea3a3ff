"""Jobs, their audit events and tasks, and the change feed of tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from genkeep.db.drivers.types import BigId, JSONType, UTCDateTime
from genkeep.db.models.base import UNFINISHED_SQL, Base
from genkeep.db.types import utcnow


class Job(Base):
    """A unit of user work: sections, a schema, an uploaded file; gates that tasks respect."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    sections: Mapped[list[Any]] = mapped_column(JSONType)
    current_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    sections_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    schema_dirty: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    file_media_type: Mapped[str | None] = mapped_column(String(128))
    file_blob_key: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class JobEvent(Base):
    """Append-only audit log; written in the same transaction as the change it records."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    trace_id: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Task(Base):
    """Async work on a job, run by workers under a lease; idempotent per (owner, key) (I4)."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_tasks_idempotency"),
        # Unfinished tasks only: finished ones (most rows, in time) are never claimed.
        Index(
            "ix_tasks_claimable",
            "status",
            "run_after",
            postgresql_where=text(UNFINISHED_SQL),
            sqlite_where=text(UNFINISHED_SQL),
        ),
        Index("ix_tasks_job", "job_id"),
        # What the retention sweep reads finished tasks by.
        Index("ix_tasks_finished", "finished_at"),
        Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # queued -> running -> completed | failed | cancelled
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime())
    timeout_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker_id: Mapped[str | None] = mapped_column(String(128))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    trace_id: Mapped[str] = mapped_column(String(32))
    # The API key the task was submitted with: its generations are metered to it (I16).
    key_id: Mapped[str | None] = mapped_column(String(32))
    # W3C traceparents (I18): the submitting request's PRODUCER span, stored with the row;
    # the CONSUMER span of the attempt that ran last, which a takeover links to.
    trace_context: Mapped[str | None] = mapped_column(String(64))
    attempt_context: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TaskChange(Base):
    """A task's status, stage and progress after each change, in commit order per task.

    Written by database triggers on ``tasks`` (migration 0005), so no code path that
    moves a task can skip it; the task event stream (SSE) replays it by ``seq``.
    """

    __tablename__ = "task_changes"
    __table_args__ = (Index("ix_task_changes_task", "task_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TaskWatcher(Base):
    """An open event stream of a task: the change trigger NOTIFYs only watched tasks.

    A NOTIFY takes a lock that serializes every committing transaction that sent one, so
    notifying each change of every task would halve the task queue's throughput for streams
    nobody opened. A row left by a killed process costs only stray wake-ups of its task.
    """

    __tablename__ = "task_watchers"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    watcher_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
