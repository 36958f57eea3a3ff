"""The ``extract`` task: a durable extraction run whose final graph becomes versioned artifacts.

The run's id is the task's id, so a retried attempt resumes the same run from its last
checkpoint instead of starting over.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from genkeep.db.artifacts import NewArtifact
from genkeep.db.models import Run
from genkeep.errors import RunBusy, TaskCancelled
from genkeep.extract.outputs import DOCUMENTS
from genkeep.extract.runner import ExtractionRunner, Progress, RunInputs, RunProgress
from genkeep.jobs.payloads import ExtractPayload
from genkeep.worker.context import TaskContext, TaskOutput

ARTIFACT_KINDS = {"turtle": "ttl", "jsonld": "jsonld", "jsonl": "jsonl"}


async def extract(context: TaskContext) -> TaskOutput:
    payload = ExtractPayload.model_validate(context.task.payload)
    services, task = context.services, context.task
    run = await services.runs.get(task.owner_id, task.id)
    if run is None:
        request = services.extraction.setup.request(
            payload.text,
            payload.input_name,
            payload.ontology.encode("utf-8"),
            payload.ontology_name,
            chunk_size=payload.chunk_size,
            overlap=payload.overlap,
            batch_size=payload.batch_size,
        )
        run = await services.extraction.create(
            task.owner_id,
            request,
            payload.extractor,
            job_id=task.job_id,
            run_id=task.id,
            concurrency=payload.concurrency,
        )
    if run.status != "completed":  # an earlier attempt may have finished it, then died
        await _execute(context, run)
    await context.progress("storing graph", 0.95)
    finished = await services.runs.require(task.owner_id, run.id)
    assert finished.outputs is not None
    artifacts = []
    for name, kind in ARTIFACT_KINDS.items():
        document = finished.outputs[name]
        filename, media_type = DOCUMENTS[name]
        # Through a temporary file: a document grows with the input, memory must not.
        with tempfile.TemporaryDirectory(prefix="genkeep-artifact-") as folder:
            path = Path(folder) / filename
            with path.open("wb") as copy:
                async for data in services.blobs.open_stream(document["key"]):
                    copy.write(data)
            key = context.blob_key(filename)
            info = await services.blobs.put_file(key, path, content_type=media_type)
        artifacts.append(NewArtifact(kind, info.key, filename, media_type, info.size, info.sha256))
    counts = finished.outputs["counts"]
    return TaskOutput(
        result={"run_id": run.id, **counts, "conforms": finished.outputs["validation"]["conforms"]},
        artifacts=artifacts,
    )


async def _execute(context: TaskContext, run: Run) -> None:
    """Run or resume the extraction to its end, publishing its progress as the task's."""
    services, task = context.services, context.task
    inputs = await services.extraction.inputs(run)
    runner = services.extraction.runner()
    cancel = asyncio.Event()
    latest: list[RunProgress] = []
    execution = asyncio.create_task(
        _when_free(runner, run, inputs, cancel, latest.append, runner.lease_s)
    )
    try:
        while not execution.done():
            await asyncio.wait({execution}, timeout=0.5)
            if latest and not execution.done():
                state = latest[-1]
                fraction = state.done / state.total if state.total else 0.0
                try:
                    await context.progress(f"batches {state.done}/{state.total}", 0.9 * fraction)
                except TaskCancelled:
                    cancel.set()  # the run stops at its next batch boundary
        status = execution.result()
    finally:
        if not execution.done():
            execution.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await execution
    if status == "cancelled":
        raise TaskCancelled(task.id)
    if status != "completed":
        finished = await services.runs.require(task.owner_id, run.id)
        raise RuntimeError(f"extraction run {run.id} {status}: {finished.error}")


async def _when_free(
    runner: ExtractionRunner,
    run: Run,
    inputs: RunInputs,
    cancel: asyncio.Event,
    on_progress: Progress,
    lease_s: float,
) -> str:
    """Execute, first waiting out the run lease of a previous owner that died holding it.

    A worker killed mid-run leaves its task lease and its run lease to expire; the task can
    be claimed again a moment before the run is free, which must not cost an attempt.
    """
    deadline = asyncio.get_running_loop().time() + lease_s * 1.5
    while True:
        try:
            # A task never overrides a cancel of its run: only `runs resume` does.
            return await runner.execute(run, inputs, cancel, on_progress, resume_cancelled=False)
        except RunBusy:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(min(1.0, lease_s / 10))
