"""Running or resuming one extraction from the shell: progress bar, signals, outputs, and
what it prints when the run ends (the exit code for the shell)."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from genkeep.cli.common import errors
from genkeep.cli.outputs import Output, as_options, write_outputs
from genkeep.config import Settings
from genkeep.core import identity
from genkeep.db.types import utcnow
from genkeep.errors import BadInput

if TYPE_CHECKING:
    from genkeep.db.models import Run
    from genkeep.extract.runner import RunProgress
    from genkeep.extract.service import ExtractionService
    from genkeep.extract.source import InputFile
    from genkeep.services import Services


def batches(count: int) -> str:
    return f"{count} batch" if count == 1 else f"{count} batches"


def resume_command(run_id: str, outputs: list[Output]) -> str:
    """The command that finishes the run and writes the documents this one was to write."""
    return " ".join(filter(None, ["genkeep runs resume", run_id, as_options(outputs)]))


def written(outputs: list[Output]) -> str:
    return ", ".join(f"{o.format.value} -> {o.shown()}" for o in outputs) or "no -o given"


async def _hand_over(services: Services, found: Run, outputs: list[Output]) -> int:
    """A completed run is done: resuming it writes its stored documents, nothing else."""
    await write_outputs(services.blobs, found, outputs)
    shown = f"; {written(outputs)}" if outputs else ""
    errors.print(
        f"run {found.id} was already completed: {batches(found.total_batches)}, "
        f"{found.entities_found} entities{shown}",
        highlight=False,
    )
    return 0


def _busy(found: Run) -> str:
    holder = identity.label(found.holder) if found.holder else "another process"
    if found.lease_expires_at is None:
        return f"run {found.id} is being executed by {holder}"
    left = max(0, round((found.lease_expires_at - utcnow()).total_seconds()))
    ends = found.lease_expires_at.isoformat(timespec="seconds")
    return (
        f"run {found.id} is being executed by {holder}; its lease "
        f"ends at {ends} (in {left}s) unless renewed: resume after that if it has died"
    )


async def execute(
    services: Services,
    service: ExtractionService,
    run_id: str,
    settings: Settings,
    outputs: list[Output],
    *,
    input_file: InputFile | None = None,
    ontology: bytes | None = None,
    ontology_name: str = "",
) -> int:
    """Run or resume ``run_id`` with a progress bar; the exit code for the shell."""
    from genkeep.errors import RunBusy
    from genkeep.extract.manager import RunManager

    found = await services.runs.require(settings.default_owner, run_id)
    if found.status == "completed":
        return await _hand_over(services, found, outputs)
    inputs = await service.inputs(
        found,
        input_file=input_file,
        ontology=ontology,
        ontology_name=ontology_name,
    )
    runner = service.runner()
    started = time.monotonic()
    columns = (
        TextColumn("[bold]batches"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[entities]} entities · {task.fields[rate]} batches/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    latest: list[RunProgress] = []
    # Shown from the first report on, once the run is ours: a refused resume prints no bar.
    bar = Progress(*columns, console=errors)
    task = bar.add_task("extract", total=None, entities=0, rate="0.0")

    def progress(state: RunProgress) -> None:
        if not latest:
            bar.start()
            # Printed once Ctrl-C and SIGTERM stop the run cleanly, so scripts can wait for it.
            errors.print(f"run {found.id}", highlight=False)
        latest[:] = [state]
        elapsed = max(time.monotonic() - started, 1e-6)
        extracted = state.done - state.resumed_from
        bar.update(
            task,
            total=state.total,
            completed=state.done,
            entities=state.entities,
            rate=f"{extracted / elapsed:.1f}",
        )

    failed: list[Exception] = []

    async def body(stop: asyncio.Event) -> str:
        # The run manager would log a failure with its traceback; here it becomes one line.
        try:
            return await runner.execute(found, inputs, stop, progress)
        except Exception as exc:
            failed.append(exc)
            return "failed"

    try:
        async with RunManager() as manager:
            handle = manager.start(found.id, body)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, manager.cancel, found.id)
            status = await handle
    finally:
        if latest:
            bar.stop()
    if failed and isinstance(failed[0], RunBusy):
        # Another process has it, or finished it between our read and our claim.
        now = await services.runs.require(settings.default_owner, found.id)
        if now.status == "completed":
            return await _hand_over(services, now, outputs)
        raise BadInput(_busy(now))
    if failed:
        raise failed[0]
    final = await services.runs.require(settings.default_owner, found.id)
    if status == "completed":
        await write_outputs(services.blobs, final, outputs)
        shown = f"; {written(outputs)}" if outputs else ""
        kept = latest[0].resumed_from if latest else 0
        resumed = (
            f" ({kept} from its checkpoint, {final.total_batches - kept} extracted now)"
            if kept
            else ""
        )
        if final.total_batches == 0:
            summary = "0 chunks: nothing to extract (the outputs are empty)"
        else:
            summary = f"{batches(final.total_batches)}{resumed}, {final.entities_found} entities"
        errors.print(f"run {found.id} completed: {summary}{shown}", highlight=False)
        return 0
    if status == "cancelled":
        errors.print(
            f"run {found.id} stopped at {final.batches_done}/{final.total_batches} "
            f"batches; resume it with `{resume_command(found.id, outputs)}`",
            highlight=False,
        )
        return 130
    errors.print(f"[red]run {found.id} {status}[/]: {final.error or ''}", highlight=False)
    return 1
