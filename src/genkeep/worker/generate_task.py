"""The ``generate`` task: the generate-once service, run by a worker."""

from __future__ import annotations

from genkeep.core.caller import CALLER, Caller
from genkeep.jobs.payloads import GeneratePayload
from genkeep.worker.context import TaskContext, TaskOutput


async def generate(context: TaskContext) -> TaskOutput:
    payload = GeneratePayload.model_validate(context.task.payload)
    await context.progress("generating", 0.1)
    # Metered and limited as its owner's and the submitting key's, in the trace of the
    # request that submitted it.
    task = context.task
    CALLER.set(Caller(task.owner_id, task.key_id, task.trace_id))
    outcome = await context.services.generate.generate(
        context.task.owner_id, payload.prompt, payload.profile
    )
    return TaskOutput(
        result={
            "prompt_id": outcome.prompt_id,
            "result_id": outcome.result_id,
            "version": outcome.version,
            "cached": outcome.cached,
            "content_sha256": outcome.content_sha256,
        }
    )
