"""Tables. Every table holding owner data has ``owner_id`` (I3)."""

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
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from genkeep.db.drivers.types import BigId, JSONType, UTCDateTime
from genkeep.db.types import utcnow

# The tasks a claim or a lease check can pick: the partial claim index covers these only.
UNFINISHED_SQL = "status IN ('queued', 'running')"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Prompt(Base):
    """One normalized prompt per (owner, profile, hash); also the single-flight claim (I1)."""

    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("owner_id", "profile_key", "normalized_hash", name="uq_prompts_key"),
        # A page of an owner's prompts, newest first, read from the index (keyset paging).
        Index("ix_prompts_owner_created", "owner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    profile_name: Mapped[str] = mapped_column(String(64))
    profile_key: Mapped[str] = mapped_column(String(64))
    normalized_hash: Mapped[str] = mapped_column(String(64))
    normalized_text: Mapped[str] = mapped_column(Text)
    prompt_text: Mapped[str] = mapped_column(Text)
    # pending -> generating -> ready | failed; a ready prompt is generating again on regenerate.
    status: Mapped[str] = mapped_column(String(16))
    claim_token: Mapped[str | None] = mapped_column(String(36))
    claim_holder: Mapped[str | None] = mapped_column(String(128))
    # The claimant's generation span (W3C traceparent), for the waiters' links (I18).
    claim_trace: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    latest_result_id: Mapped[str | None] = mapped_column(String(36))
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Result(Base):
    """One version of a prompt's content: generated, regenerated or edited."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("prompt_id", "version", name="uq_results_prompt_version"),
        Index("ix_results_owner", "owner_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    # What an OpenAI-compatible answer said beside its text, as JSON (core.generation).
    details: Mapped[str | None] = mapped_column(Text)
    edited_from_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """An API key: the token is shown once; only its sha256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


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


class Deletion(Base):
    """Who deleted what and when (a job, a prompt, an owner), never the content (I17).

    Written before the first row goes and stamped ``finished_at`` after the last blob, so a
    deletion a crash cut short is found again and finished (``genkeep ops sweep``).
    """

    __tablename__ = "deletions"
    __table_args__ = (
        Index("ix_deletions_owner", "owner_id", "requested_at"),
        Index("ix_deletions_pending", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # job | prompt | owner
    target_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    trace_id: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How many rows and blobs of each kind went: numbers only.
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType)


class Sweep(Base):
    """When a periodic sweep last started and who started it: one process per period."""

    __tablename__ = "sweeps"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    swept_at: Mapped[datetime] = mapped_column(UTCDateTime())
    holder: Mapped[str] = mapped_column(String(128))


class RateBucket(Base):
    """A token bucket shared by every process: requests and tokens left, refilled by the
    database's clock (epoch seconds). Named ``provider:<profile>``, ``key:<id>``, ``owner:<id>``."""

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    requests: Mapped[float] = mapped_column(Float)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[float] = mapped_column(Float)


class UpstreamWindow(Base):
    """The upstream attempts made for one prompt in its current window (bounded, so client
    retries cannot multiply them)."""

    __tablename__ = "upstream_windows"

    prompt_id: Mapped[str] = mapped_column(
        ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True
    )
    started_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    # The provider's last Retry-After, told to every refused request of the window.
    retry_after_s: Mapped[float | None] = mapped_column(Float)


class SpendLimit(Base):
    """The limits of a key (``key:<id>``) or an owner (``owner:<id>``); money in micro-dollars."""

    __tablename__ = "spend_limits"

    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    budget_period: Mapped[str | None] = mapped_column(String(8))  # day | month
    lifetime_micros: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SpendCounter(Base):
    """Spent and reserved money of one subject in one period (``2026-12-04``, ``2026-12``,
    ``lifetime``); admission moves ``reserved`` in the transaction that admits (I16)."""

    __tablename__ = "spend_counters"

    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    spent_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class SpendReservation(Base):
    """One admitted call's hold on one counter, until settled or its lease (epoch) expires."""

    __tablename__ = "spend_reservations"
    __table_args__ = (Index("ix_spend_reservations_counter", "subject", "period"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float)


class UsageEntry(Base):
    """One generator call (or a hit, which saved its cost): tokens, cost, who and what."""

    __tablename__ = "usage_entries"
    __table_args__ = (Index("ix_usage_entries_owner_day", "owner_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    profile_name: Mapped[str] = mapped_column(String(64))
    result_id: Mapped[str | None] = mapped_column(String(36))
    trace_id: Mapped[str | None] = mapped_column(String(64))
    hit: Mapped[bool] = mapped_column(Boolean, default=False)
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # Of prompt_tokens, those the provider served from its cache (its cached-input price).
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    saved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    day: Mapped[str] = mapped_column(String(10))  # UTC, for grouping alike on both databases
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
