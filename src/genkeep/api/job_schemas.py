"""Bodies of the jobs, tasks and artifacts API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from genkeep.core.types import PositiveInt32, RequestModel
from genkeep.db.models import Artifact, Job, JobEvent, Task, TaskChange
from genkeep.errors import PayloadTooLarge

# Stored as one JSON value per row; larger ones answer 413 (the body cap is far above).
MAX_SCHEMA_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 256 * 1024


def check_json_size(value: dict[str, Any] | None, limit: int, name: str) -> None:
    """PayloadTooLarge when ``value`` serializes to more than ``limit`` bytes."""
    if value is not None and len(json.dumps(value).encode("utf-8")) > limit:
        raise PayloadTooLarge(f"{name} is larger than {limit} bytes as JSON")


def check_json_schema(value: dict[str, Any] | None) -> None:
    """ValueError when ``value`` is not a JSON Schema (by its $schema, else the latest draft)."""
    if value is None:
        return
    try:
        validator_for(value).check_schema(value)
    except SchemaError as error:
        raise ValueError(f"not a valid JSON Schema: {error.message}") from None


class Section(RequestModel):
    title: str = Field(min_length=1, max_length=300)
    content: str = Field(max_length=1_000_000, description="Markdown.")


class JobCreate(RequestModel):
    title: str = Field("Untitled job", min_length=1, max_length=300)
    sections: list[Section] = Field(default_factory=list, max_length=500)
    current_schema: dict[str, Any] | None = Field(
        None, description=f"A JSON Schema up to {MAX_SCHEMA_BYTES} bytes (413 above)."
    )
    sections_confirmed: bool = False
    schema_dirty: bool = False

    @field_validator("current_schema")
    @classmethod
    def _schema_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        check_json_size(value, MAX_SCHEMA_BYTES, "current_schema")
        check_json_schema(value)
        return value


class JobUpdate(RequestModel):
    """Fields to change. Changing sections unconfirms them; changing the schema marks it dirty."""

    not_null = ("title", "sections", "sections_confirmed", "schema_dirty", "version")

    # Constraints sit on the inner type: on the union pydantic would not translate them.
    title: Annotated[str, Field(min_length=1, max_length=300)] | SkipJsonSchema[None] = None
    sections: Annotated[list[Section], Field(max_length=500)] | SkipJsonSchema[None] = None
    current_schema: dict[str, Any] | None = Field(
        None, description=f"A JSON Schema up to {MAX_SCHEMA_BYTES} bytes; null clears it."
    )
    sections_confirmed: bool | SkipJsonSchema[None] = None
    schema_dirty: bool | SkipJsonSchema[None] = None
    version: PositiveInt32 | SkipJsonSchema[None] = Field(
        None, description="Expected version (or send If-Match)."
    )

    @field_validator("current_schema")
    @classmethod
    def _schema_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        check_json_size(value, MAX_SCHEMA_BYTES, "current_schema")
        check_json_schema(value)
        return value


class FileOut(BaseModel):
    name: str
    size: int
    sha256: str
    media_type: str


class JobOut(BaseModel):
    id: str
    title: str
    sections: list[Section]
    current_schema: dict[str, Any] | None
    sections_confirmed: bool
    schema_dirty: bool
    version: int
    file: FileOut | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobOut:
        file = None
        if job.file_blob_key:
            file = FileOut(
                name=job.file_name or "",
                size=job.file_size or 0,
                sha256=job.file_sha256 or "",
                media_type=job.file_media_type or "",
            )
        return cls(
            id=job.id,
            title=job.title,
            sections=[Section(**s) for s in job.sections],
            current_schema=job.current_schema,
            sections_confirmed=job.sections_confirmed,
            schema_dirty=job.schema_dirty,
            version=job.version,
            file=file,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class EventOut(BaseModel):
    id: int
    event_type: str
    payload: dict[str, Any]
    trace_id: str
    actor: str
    created_at: datetime

    @classmethod
    def of(cls, event: JobEvent) -> EventOut:
        return cls.model_validate(event, from_attributes=True)


class TaskCreate(RequestModel):
    kind: str = Field(description="export | generate | extract (and extensions).")
    payload: dict[str, Any] = Field(
        default_factory=dict, description=f"Per kind; up to {MAX_PAYLOAD_BYTES} bytes as JSON."
    )

    @field_validator("payload")
    @classmethod
    def _payload_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json_size(value, MAX_PAYLOAD_BYTES, "payload")
        return value


class TaskOut(BaseModel):
    id: str
    job_id: str
    kind: str
    status: str
    stage: str | None
    progress: float
    attempts: int
    max_attempts: int
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    # Where and under which trace the task ran: the console's task page shows both.
    worker_id: str | None = None
    trace_id: str | None = None
    timeout_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls.model_validate(task, from_attributes=True)


class TaskEventOut(BaseModel):
    """One change of a task, as the event stream sends it (``seq`` is the SSE ``id``)."""

    id: str
    seq: int
    status: str
    stage: str | None
    progress: float
    attempts: int
    cancel_requested: bool
    error: str | None
    changed_at: datetime

    @classmethod
    def of(cls, change: TaskChange) -> TaskEventOut:
        return cls(
            id=change.task_id,
            seq=change.seq,
            status=change.status,
            stage=change.stage,
            progress=change.progress,
            attempts=change.attempts,
            cancel_requested=change.cancel_requested,
            error=change.error,
            changed_at=change.changed_at,
        )


class ArtifactOut(BaseModel):
    id: str
    job_id: str
    task_id: str | None
    kind: str
    version: int
    is_zip: bool
    filename: str
    media_type: str
    size: int
    sha256: str
    source_result_id: str | None
    source_sha256: str | None
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, artifact: Artifact) -> ArtifactOut:
        return cls.model_validate(artifact, from_attributes=True)
