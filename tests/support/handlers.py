"""Extra task kinds for tests, loaded through GENKEEP_TASK_MODULES like any extension."""

from __future__ import annotations

import asyncio
from pathlib import Path

from genkeep.db.artifacts import NewArtifact
from genkeep.jobs import TaskKind
from genkeep.worker.context import TaskContext, TaskOutput
from genkeep.worker.registry import Handler


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


async def flaky(context: TaskContext) -> TaskOutput:
    """Fail until attempt ``succeed_on`` (never, if 0)."""
    succeed_on = int(context.task.payload.get("succeed_on", 0))
    if succeed_on == 0 or context.task.attempts < succeed_on:
        raise RuntimeError(f"flaky failure on attempt {context.task.attempts}")
    return TaskOutput(result={"attempt": context.task.attempts})


async def noop(context: TaskContext) -> TaskOutput:
    return TaskOutput()


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


async def gauge(context: TaskContext) -> TaskOutput:
    """Count itself in ``GAUGE`` while it sleeps ``sleep_s``."""
    GAUGE["now"] += 1
    GAUGE["most"] = max(GAUGE["most"], GAUGE["now"])
    try:
        await asyncio.sleep(float(context.task.payload.get("sleep_s", 0.01)))
    finally:
        GAUGE["now"] -= 1
    return TaskOutput(result={"task": context.task.id})


async def fails_once_with_artifact(context: TaskContext) -> TaskOutput:
    if context.task.attempts < 2:
        raise RuntimeError("first attempt fails")
    key = context.blob_key("out.txt")
    info = await context.services.blobs.put(key, b"ok", content_type="text/plain")
    artifact = NewArtifact("txt", key, "out.txt", "text/plain", info.size, info.sha256)
    return TaskOutput(result={"ok": True}, artifacts=[artifact])


async def leaks_a_path(context: TaskContext) -> TaskOutput:
    if context.task.payload.get("os"):
        raise FileNotFoundError(2, "No such file or directory", "/srv/genkeep/var/blobs/x.pdf")
    raise RuntimeError("cannot read /srv/genkeep/var/blobs/owners/alice/y.pdf: denied")


TASK_HANDLERS: dict[str, Handler] = {
    "sleep": sleep,
    "flaky": flaky,
    "noop": noop,
    "stages": stages,
    "gauge": gauge,
    "fails-once-with-artifact": fails_once_with_artifact,
    "leaks-a-path": leaks_a_path,
}
# Their payloads are free-form: a kind without a model takes any JSON object.
TASK_KINDS = [TaskKind(kind) for kind in TASK_HANDLERS]
