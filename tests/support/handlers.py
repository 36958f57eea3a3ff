"""Extra task kinds for tests, loaded through GENKEEP_TASK_MODULES like any extension."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from genkeep.db.artifacts import NewArtifact
from genkeep.worker.context import TaskContext, TaskOutput
from genkeep.worker.registry import register


def _any(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@register("sleep", _any)
async def sleep(context: TaskContext) -> TaskOutput:
    """Sleep in steps (a checkpoint each), then store one small artifact."""
    steps = int(context.task.payload.get("steps", 10))
    for step in range(steps):
        await context.progress(f"step {step + 1}/{steps}", step / steps)
        await asyncio.sleep(float(context.task.payload.get("step_s", 0.1)))
    data = f"task {context.task.id} attempt {context.task.attempts}\n".encode()
    info = await context.services.blobs.put(
        context.blob_key("out.txt"), data, content_type="text/plain"
    )
    kind = str(context.task.payload.get("kind", "txt"))
    artifact = NewArtifact(kind, info.key, "out.txt", "text/plain", info.size, info.sha256)
    return TaskOutput(result={"steps": steps}, artifacts=[artifact])


@register("flaky", _any)
async def flaky(context: TaskContext) -> TaskOutput:
    """Fail until attempt ``succeed_on`` (never, if 0)."""
    succeed_on = int(context.task.payload.get("succeed_on", 0))
    if succeed_on == 0 or context.task.attempts < succeed_on:
        raise RuntimeError(f"flaky failure on attempt {context.task.attempts}")
    return TaskOutput(result={"attempt": context.task.attempts})


@register("noop", _any)
async def noop(context: TaskContext) -> TaskOutput:
    return TaskOutput()


@register("stages", _any)
async def stages(context: TaskContext) -> TaskOutput:
    """``steps`` stages back to back, each moving its progress twice and once not at all;
    before stage ``gate_at`` it waits for the file ``gate``."""
    steps = int(context.task.payload.get("steps", 20))
    gate_at = int(context.task.payload.get("gate_at", 0))
    gate = Path(str(context.task.payload.get("gate", "")))
    for step in range(1, steps + 1):
        if step == gate_at:
            await _wait_for_file(gate)
        # A stage, then a move of progress alone, then the same again (no change at all).
        await context.progress(f"step {step}/{steps}", 0.9 * (step - 0.5) / steps)
        await context.progress(f"step {step}/{steps}", 0.9 * step / steps)
        await context.progress(f"step {step}/{steps}", 0.9 * step / steps)
    return TaskOutput(result={"steps": steps})


async def _wait_for_file(path: Path) -> None:
    """Until the test creates ``path`` (a file, so another process can open the gate)."""
    while not await asyncio.to_thread(path.exists):  # noqa: ASYNC110 - no event crosses processes
        await asyncio.sleep(0.01)


# Handlers of kind "gauge" running right now in this process, and the most seen at once.
GAUGE = {"now": 0, "most": 0}


@register("gauge", _any)
async def gauge(context: TaskContext) -> TaskOutput:
    """Count itself in ``GAUGE`` while it sleeps ``sleep_s``."""
    GAUGE["now"] += 1
    GAUGE["most"] = max(GAUGE["most"], GAUGE["now"])
    try:
        await asyncio.sleep(float(context.task.payload.get("sleep_s", 0.01)))
    finally:
        GAUGE["now"] -= 1
    return TaskOutput(result={"task": context.task.id})
