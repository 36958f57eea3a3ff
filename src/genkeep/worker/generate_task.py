"""The ``generate`` task: the generate-once service, run by a worker."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from genkeep.errors import BadInput
from genkeep.worker.context import TaskContext, TaskOutput
from genkeep.worker.registry import register


class GeneratePayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    profile: str | None = None


def validate(payload: dict[str, Any]) -> dict[str, Any]:
    try:
        return GeneratePayload.model_validate(payload).model_dump(exclude_none=True)
    except ValueError as exc:
        raise BadInput(f"invalid generate payload: {exc}".replace("\n", " ")) from None


@register("generate", validate, GeneratePayload)
async def generate(context: TaskContext) -> TaskOutput:
    payload = GeneratePayload.model_validate(context.task.payload)
    await context.progress("generating", 0.1)
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
