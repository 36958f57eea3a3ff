"""Extraction runs: ontologies, runs, their batches, entities, change feed and LLM answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from genkeep.db.drivers.types import BigId, JSONType, UTCDateTime
from genkeep.db.models.base import Base
from genkeep.db.types import utcnow


class OntologyRecord(Base):
    """A canonical ontology by content hash: what index-cache hits are verified against (I10)."""

    __tablename__ = "ontologies"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    canonical: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Run(Base):
    """An extraction run: its manifest (I7), checkpoint (I6), lease (I13) and outputs."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(36))
    # pending -> running -> completed | failed | cancelled
    status: Mapped[str] = mapped_column(String(16))
    input_name: Mapped[str] = mapped_column(String(255))
    input_sha256: Mapped[str] = mapped_column(String(64))
    input_blob_key: Mapped[str] = mapped_column(String(512))
    input_chars: Mapped[int] = mapped_column(BigInteger)
    ontology_hash: Mapped[str] = mapped_column(String(64))
    extractor_name: Mapped[str] = mapped_column(String(64))
    extractor_version: Mapped[str] = mapped_column(String(32))
    # Null in runs stored before chunk parameters were kept: they resume on the defaults.
    chunk_size: Mapped[int | None] = mapped_column(Integer)
    chunk_overlap: Mapped[int | None] = mapped_column(Integer)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    # Batches in flight at once across the fleet; null: GENKEEP_EXTRACT_RUN_CONCURRENCY.
    concurrency: Mapped[int | None] = mapped_column(Integer)
    total_batches: Mapped[int] = mapped_column(Integer, default=0)
    batches_done: Mapped[int] = mapped_column(Integer, default=0)
    batches_failed: Mapped[int] = mapped_column(Integer, default=0)
    entities_found: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    holder: Mapped[str | None] = mapped_column(String(128))
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The W3C traceparent of the span that created the run (I18), continued by its executor.
    trace_context: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RunChange(Base):
    """A run's status and counts after each change, in commit order per run.

    Written by database triggers on ``runs`` (migration 0006), whichever process moves
    the run (the server's run manager or a worker's ``extract`` task); the run event
    stream (SSE) replays it by ``seq``.
    """

    __tablename__ = "run_changes"
    __table_args__ = (Index("ix_run_changes_run", "run_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    total_batches: Mapped[int] = mapped_column(Integer)
    batches_done: Mapped[int] = mapped_column(Integer)
    batches_failed: Mapped[int] = mapped_column(Integer)
    entities_found: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunWatcher(Base):
    """An open event stream of a run: the change trigger NOTIFYs only watched runs (see
    ``TaskWatcher`` for why)."""

    __tablename__ = "run_watchers"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    watcher_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunBatch(Base):
    """One batch's result, committed with the run's checkpoint; verified by its checksum."""

    __tablename__ = "run_batches"
    __table_args__ = (Index("ix_run_batches_status", "status", "run_id"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    batch_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | running | done | failed
    result: Mapped[str | None] = mapped_column(Text)
    checksum: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The batch lease (a fleet worker's claim); ``holder`` stays after the commit.
    holder: Mapped[str | None] = mapped_column(String(128))
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RunEntity(Base):
    """The per-run entity registry (I11): every entity key seen, and where first."""

    __tablename__ = "run_entities"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    entity_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    first_batch: Mapped[int] = mapped_column(Integer)


class LlmAnswer(Base):
    """A valid LLM answer by the sha256 of its normalized request, so a re-run pays once."""

    __tablename__ = "llm_cache"
    __table_args__ = (Index("ix_llm_cache_created", "created_at"),)

    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    answer: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LlmFlight(Base):
    """The one LLM call in flight for a request hash (single flight across workers): its
    leader's token and lease; deleted when it lands, taken over once its lease ends."""

    __tablename__ = "llm_flights"

    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
