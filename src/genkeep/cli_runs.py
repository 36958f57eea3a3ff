"""``genkeep extract`` and ``genkeep runs``: durable extraction from the shell."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

from genkeep.cli_common import console, errors, fail, run
from genkeep.cli_common import settings as load_cli_settings
from genkeep.config import Settings

if TYPE_CHECKING:
    from genkeep.db.models import Run
    from genkeep.extract.runner import RunProgress
    from genkeep.extract.service import ExtractionService
    from genkeep.services import Services

runs_app = typer.Typer(help="Extraction runs: list, show, resume, cancel.", no_args_is_help=True)


@asynccontextmanager
async def extraction(settings: Settings) -> AsyncIterator[tuple[Services, ExtractionService]]:
    from genkeep.services import close_services, open_services

    services = await open_services(settings)
    try:
        yield services, services.extraction
    finally:
        await close_services(services)


def extract(
    input_file: Annotated[Path, typer.Argument(help="The text to extract from (UTF-8).")],
    ontology: Annotated[Path, typer.Option(help="OWL/RDFS ontology: Turtle, RDF/XML or JSON-LD.")],
    chunk_size: Annotated[int | None, typer.Option(min=1, help="Characters per chunk.")] = None,
    overlap: Annotated[int | None, typer.Option(min=0, help="Characters of overlap.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Chunks per batch.")] = None,
    extractor: Annotated[str, typer.Option(help="The extractor.")] = "builtin",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write Turtle here.")
    ] = None,
) -> None:
    """Extract a knowledge graph; Ctrl-C stops at the next batch and leaves a resumable run."""
    from genkeep.extract.service import RunRequest

    settings = load_cli_settings()
    for path in (input_file, ontology):
        if not path.is_file():
            raise fail(f"no such file: {path}")
    try:
        text = input_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise fail(f"{input_file} is not UTF-8 text") from None
    request = RunRequest.with_defaults(
        settings,
        text,
        input_file.name,
        ontology.read_bytes(),
        ontology.name,
        chunk_size=chunk_size,
        overlap=overlap,
        batch_size=batch_size,
    )

    async def main() -> int:
        async with extraction(settings) as (services, service):
            created = await service.create(settings.default_owner, request, extractor)
            return await execute(services, service, created.id, settings, output)

    raise typer.Exit(run(main()))


@runs_app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument()],
    input_file: Annotated[Path | None, typer.Option("--input", help="Check this input.")] = None,
    ontology: Annotated[Path | None, typer.Option(help="Check this ontology.")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write Turtle here.")
    ] = None,
) -> None:
    """Resume a run where it stopped, with the chunk parameters stored when it started."""
    settings = load_cli_settings()
    for path in (input_file, ontology):
        if path is not None and not path.is_file():
            raise fail(f"no such file: {path}")
    text = input_file.read_text(encoding="utf-8") if input_file else None
    ontology_bytes = ontology.read_bytes() if ontology else None

    async def main() -> int:
        async with extraction(settings) as (services, service):
            return await execute(
                services,
                service,
                run_id,
                settings,
                output,
                text=text,
                ontology=ontology_bytes,
                ontology_name=ontology.name if ontology else "",
            )

    raise typer.Exit(run(main()))


@runs_app.command("list")
def list_runs(limit: Annotated[int, typer.Option(min=1, max=500)] = 20) -> None:
    """The newest runs and where they are."""
    settings = load_cli_settings()

    async def main() -> list[Run]:
        async with extraction(settings) as (services, _):
            return await services.runs.list_runs(settings.default_owner, limit)

    # Run ids whole even on a narrow or piped console: `runs resume` takes them.
    table = Table(
        Column("run", no_wrap=True, min_width=36),
        "status",
        "input",
        "batches",
        "entities",
        "created",
    )
    for found in run(main()):
        table.add_row(
            found.id,
            found.status,
            found.input_name,
            f"{found.batches_done}/{found.total_batches}",
            str(found.entities_found),
            found.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@runs_app.command("show")
def show(run_id: Annotated[str, typer.Argument()]) -> None:
    """A run's manifest, checkpoint and outputs."""
    settings = load_cli_settings()

    async def main() -> Run:
        async with extraction(settings) as (services, _):
            return await services.runs.require(settings.default_owner, run_id)

    found = run(main())
    table = Table(show_header=False)
    for name in (
        "id",
        "status",
        "input_name",
        "input_sha256",
        "ontology_hash",
        "extractor_name",
        "extractor_version",
        "chunk_size",
        "chunk_overlap",
        "batch_size",
        "total_batches",
        "batches_done",
        "batches_failed",
        "entities_found",
        "error",
        "outputs",
        "created_at",
        "finished_at",
    ):
        table.add_row(name, str(getattr(found, name)))
    console.print(table)


@runs_app.command("cancel")
def cancel(run_id: Annotated[str, typer.Argument()]) -> None:
    """Stop a run at its next batch boundary (it stays resumable)."""
    settings = load_cli_settings()

    async def main() -> Run:
        async with extraction(settings) as (services, _):
            return await services.runs.request_cancel(settings.default_owner, run_id)

    found = run(main())
    console.print(
        f"run {run_id}: {'cancel requested' if found.status == 'running' else found.status}"
    )


async def execute(
    services: Services,
    service: ExtractionService,
    run_id: str,
    settings: Settings,
    output: Path | None,
    *,
    text: str | None = None,
    ontology: bytes | None = None,
    ontology_name: str = "",
) -> int:
    """Run or resume ``run_id`` with a progress bar; the exit code for the shell."""
    from genkeep.extract.manager import RunManager
    from genkeep.extract.runner import ExtractionRunner

    found = await services.runs.require(settings.default_owner, run_id)
    inputs = await service.inputs(
        found,
        text=text,
        ontology=ontology,
        ontology_name=ontology_name,
    )
    runner = ExtractionRunner(
        services.runs,
        services.blobs,
        lease_s=settings.extract_lease_s,
        concurrency=settings.extract_concurrency,
    )
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
    with Progress(*columns, console=errors) as bar:
        task = bar.add_task("extract", total=None, entities=0, rate="0.0")

        def progress(state: RunProgress) -> None:
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

        async with RunManager() as manager:
            handle = manager.start(
                found.id, lambda stop: runner.execute(found, inputs, stop, progress)
            )
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, manager.cancel, found.id)
            # Printed once Ctrl-C and SIGTERM stop the run cleanly, so scripts can wait for it.
            errors.print(f"run {found.id}", highlight=False)
            status = await handle
    final = await services.runs.require(settings.default_owner, found.id)
    if status == "completed":
        if output is not None and final.outputs:
            graph = await services.blobs.get(final.outputs["turtle"]["key"])
            await asyncio.to_thread(output.write_bytes, graph)
        written = f" -> {output}" if output else ""
        kept = latest[0].resumed_from if latest else 0
        resumed = (
            f" ({kept} from its checkpoint, {final.total_batches - kept} extracted now)"
            if kept
            else ""
        )
        errors.print(
            f"run {found.id} completed: {final.total_batches} batches{resumed}, "
            f"{final.entities_found} entities{written}"
        )
        return 0
    if status == "cancelled":
        errors.print(
            f"run {found.id} stopped at {final.batches_done}/{final.total_batches} "
            f"batches; resume it with `genkeep runs resume {found.id}`"
        )
        return 130
    errors.print(f"[red]run {found.id} {status}[/]: {final.error or ''}")
    return 1


def evaluate(
    gold: Annotated[Path | None, typer.Option(help="Gold annotations (JSONL).")] = None,
    ontology: Annotated[Path | None, typer.Option(help="The ontology of the gold labels.")] = None,
) -> None:
    """Span-level precision, recall and F1 of the built-in extractor on gold annotations."""
    from genkeep.extract.builtin import BuiltinExtractor
    from genkeep.extract.evaluate import evaluate as score
    from genkeep.extract.evaluate import format_table
    from genkeep.extract.index import OntologyIndex
    from genkeep.extract.ontology import load_ontology

    gold = gold or SAMPLES / "gold.jsonl"
    ontology = ontology or SAMPLES / "ontology.ttl"
    for path in (gold, ontology):
        if not path.is_file():
            raise fail(f"no such file: {path}")
    index = OntologyIndex(load_ontology(ontology.read_bytes(), name=ontology.name))
    scores = run(score(gold, BuiltinExtractor(), index))
    console.print(format_table([("genkeep-builtin 1", scores)]))


SAMPLES = Path(__file__).resolve().parent / "extract" / "samples"


def register(app: typer.Typer) -> None:
    app.command()(extract)
    app.command("eval")(evaluate)
    app.add_typer(runs_app, name="runs")
