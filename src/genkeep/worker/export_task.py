"""The ``export`` task: render a job's sections or a stored result into versioned artifacts."""

from __future__ import annotations

import asyncio
import io
import unicodedata
import zipfile

from genkeep.core.hashes import sha256_hex
from genkeep.db.artifacts import NewArtifact
from genkeep.db.models import Job
from genkeep.export.formats import render
from genkeep.export.types import ExportMeta
from genkeep.generate.canonical import persisted_content, title_of
from genkeep.jobs.gates import export_gate
from genkeep.jobs.payloads import ExportPayload
from genkeep.telemetry import tracing
from genkeep.worker.context import TaskContext, TaskOutput


def sections_markdown(job: Job) -> str:
    parts = [f"# {job.title}\n"]
    for section in job.sections:
        parts.append(f"## {section['title']}\n\n{section['content'].strip()}\n")
    return "\n".join(parts)


async def export(context: TaskContext) -> TaskOutput:
    payload = ExportPayload.model_validate(context.task.payload)
    services, task = context.services, context.task
    await context.progress("loading", 0.05)
    job = await services.jobs.require(task.owner_id, task.job_id)
    if payload.uses_sections:
        export_gate(job, context.task.payload)
        content = sections_markdown(job)
        meta = ExportMeta(None, None, sha256_hex(content), "sections", persisted=True)
    else:
        result = await persisted_content(
            services.prompts,
            task.owner_id,
            result_id=payload.result_id,
            prompt_id=payload.prompt_id,
        )
        content = result.content
        meta = ExportMeta(result.id, result.prompt_id, result.content_sha256, result.source, True)
    title = payload.title or title_of(content, job.title)
    files: list[tuple[str, bytes, str]] = []
    for index, fmt in enumerate(payload.formats):
        await context.progress(f"rendering {fmt}", 0.1 + 0.7 * index / len(payload.formats))
        with tracing.span("export render", attributes={"genkeep.export.format": fmt}):
            rendered = await asyncio.to_thread(render, content, fmt, title=title, meta=meta)
        files.append((f"{_slug(title)}.{rendered.extension}", rendered.data, rendered.media_type))
    await context.progress("storing", 0.85)
    kind: str = payload.formats[0]
    is_zip = len(files) > 1
    if not is_zip:
        name, data, media_type = files[0]
    else:
        name, data, media_type = f"{_slug(title)}.zip", _zip(files), "application/zip"
        kind = "zip"
    # Blob keys keep to ASCII; the artifact keeps the title's own letters for downloads.
    info = await services.blobs.put(
        context.blob_key(ascii_name(name)), data, content_type=media_type
    )
    artifact = NewArtifact(
        kind=kind,
        blob_key=info.key,
        filename=name,
        media_type=media_type,
        size=info.size,
        sha256=info.sha256,
        is_zip=is_zip,
        source_result_id=meta.result_id,
        source_sha256=meta.content_sha256,
    )
    return TaskOutput(
        result={"formats": payload.formats, "source_sha256": meta.content_sha256},
        artifacts=[artifact],
    )


def _zip(files: list[tuple[str, bytes, str]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data, _ in files:
            # A fixed timestamp keeps bundles of the same content byte-identical.
            bundle.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def ascii_name(filename: str) -> str:
    """A blob-key-safe form of ``filename``: "Café report.pdf" → "cafe-report.pdf"."""
    stem, dot, extension = filename.rpartition(".")
    folded = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    return f"{_slug(folded)}{dot}{extension}"


def _slug(title: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned[:60] or "export"
