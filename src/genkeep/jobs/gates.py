"""Gate rules: what a job must be before a task of some kind may run on it."""

from __future__ import annotations

from typing import Any

from genkeep.db.models import Job
from genkeep.errors import GateClosed
from genkeep.jobs.payloads import ExportPayload


def export_gate(job: Job, payload: dict[str, Any]) -> None:
    """Sections are exported only when confirmed and the schema is clean (documented rule)."""
    if not ExportPayload.model_validate(payload).uses_sections:
        return
    if not job.sections_confirmed:
        raise GateClosed("the job's sections are not confirmed; confirm them before exporting")
    if job.schema_dirty:
        raise GateClosed("the job's schema changed since the sections were made (schema_dirty)")
    if not job.sections:
        raise GateClosed("the job has no sections to export")
