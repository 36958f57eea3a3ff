"""``genkeep extract`` and ``genkeep runs``: durable extraction from the shell."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from genkeep.cli.common import console, errors, fail, run
from genkeep.cli.common import settings as load_cli_settings
from genkeep.cli.execute import execute, written
from genkeep.cli.fleet import ConcurrencyOption, WorkersOption, helpers, shares_table, work
from genkeep.cli.help import Command, Group, examples
from genkeep.cli.outputs import OutputFormat, plan_outputs, write_outputs
from genkeep.config import Settings
from genkeep.errors import BadInput
from genkeep.telemetry import tracing

if TYPE_CHECKING:
    from genkeep.db.models import Run
    from genkeep.db.run_batches import WorkerShare
    from genkeep.extract.service import ExtractionService
    from genkeep.extract.source import InputFile
    from genkeep.services import Services

runs_app = typer.Typer(
    cls=Group,
    help="Extraction runs: list, show, resume, export, cancel.",
    epilog=examples("genkeep runs list", "genkeep runs resume RUN_ID -o graph.ttl"),
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document, not a table.")]


@asynccontextmanager
async def extraction(settings: Settings) -> AsyncIterator[tuple[Services, ExtractionService]]:
    from genkeep.services import close_services, open_services

    services = await open_services(settings)
    try:
        yield services, services.extraction
    finally:
        await close_services(services)


class ExtractorChoice(StrEnum):
    builtin = "builtin"
    ner = "ner"
    llm = "llm"


def _default(setting: str) -> str:
    """The default of an option that falls back to a setting (escaped for rich markup)."""
    return f"\\[default: {Settings.model_fields[setting].default}, or GENKEEP_{setting.upper()}]"


OutputOption = Annotated[
    list[Path] | None,
    typer.Option(
        "-o",
        "--output",
        metavar="FILE",
        help="Write a document here, by extension: .ttl (Turtle), .jsonld (JSON-LD), "
        ".jsonl (grounded spans); repeat for several; '-' is stdout.",
        readable=False,  # a write-only file is a fine target: plan_outputs checks writing
    ),
]
FormatOption = Annotated[
    OutputFormat | None,
    typer.Option("--format", help="The format of an -o without a known extension (or '-')."),
]


def extract(
    # readable=False on every file read: click would refuse an unreadable one as a usage
    # error (exit 2, its own words); read_file refuses it as it refuses a missing one.
    input_file: Annotated[
        Path,
        typer.Argument(metavar="INPUT", help="The text to extract from (UTF-8).", readable=False),
    ],
    ontology: Annotated[
        Path,
        typer.Option(
            metavar="FILE", help="OWL/RDFS ontology: Turtle, RDF/XML or JSON-LD.", readable=False
        ),
    ],
    chunk_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Characters per chunk " + _default("extract_chunk_size"),
        ),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="N",
            help="Characters shared by neighbouring chunks (less than the chunk size) "
            + _default("extract_overlap"),
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Chunks per batch (one checkpoint each) " + _default("extract_batch_size"),
        ),
    ] = None,
    extractor: Annotated[
        ExtractorChoice | None,
        typer.Option(
            help="builtin: offline ontology-label matching; ner: spaCy's named entities "
            "typed by the ontology (GENKEEP_NER_MODEL); llm: an OpenAI-compatible model "
            "(GENKEEP_EXTRACT_LLM_MODEL, GENKEEP_OPENAI_BASE_URL).",
            show_default="ner when installed, else builtin",
        ),
    ] = None,
    output: OutputOption = None,
    fmt: FormatOption = None,
    workers: WorkersOption = 1,
    concurrency: ConcurrencyOption = None,
) -> None:
    """Extract a knowledge graph; Ctrl-C stops at the next batch and leaves a resumable run."""
    from genkeep.extract.service import ExtractionSetup

    settings = load_cli_settings()
    source = read_input(input_file)
    ontology_bytes = read_file(ontology)
    outputs = plan_outputs(output or [], fmt)
    request = ExtractionSetup.of(settings).request(
        "",
        input_file.name,
        ontology_bytes,
        ontology.name,
        chunk_size=chunk_size,
        overlap=overlap,
        batch_size=batch_size,
        limit_input=False,
        input_file=source,
    )

    async def main() -> int:
        async with extraction(settings) as (services, service):
            # One trace for the whole command: the run, its batches, its outputs.
            with tracing.span("genkeep extract", attributes={"genkeep.input": input_file.name}):
                created = await service.create(
                    settings.default_owner,
                    request,
                    extractor.value if extractor else None,
                    concurrency=concurrency,
                )
                with helpers(created.id, workers - 1, settings.extract_lease_s):
                    return await execute(services, service, created.id, settings, outputs)

    raise typer.Exit(run(main()))


def read_file(path: Path) -> bytes:
    """The file's bytes, or one line saying why not: ``cannot read PATH: <why>``, whether it
    is missing, unreadable or anything else the system refuses."""
    if path.is_dir():
        raise fail(f"{path} is a folder; give a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise fail(f"cannot read {path}: {why[:1].lower()}{why[1:]}") from None


def read_input(path: Path) -> InputFile:
    """The file checked as UTF-8 text in one pass, without holding it (inputs may be large)."""
    from genkeep.extract.source import InputFile

    if path.is_dir():
        raise fail(f"{path} is a folder; give a file")
    try:
        return InputFile.scan(path)
    except UnicodeDecodeError:
        raise fail(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise fail(f"cannot read {path}: {why[:1].lower()}{why[1:]}") from None


@runs_app.command(
    "resume",
    cls=Command,
    epilog=examples("genkeep runs resume RUN_ID -o graph.ttl -o spans.jsonl"),
)
def resume(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    input_file: Annotated[
        Path | None,
        typer.Option("--input", metavar="FILE", help="Check this input.", readable=False),
    ] = None,
    ontology: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Check this ontology.", readable=False)
    ] = None,
    output: OutputOption = None,
    fmt: FormatOption = None,
    workers: WorkersOption = 1,
) -> None:
    """Resume a run where it stopped, with the chunk parameters stored when it started; a
    completed run only writes its outputs."""
    settings = load_cli_settings()
    source = read_input(input_file) if input_file else None
    ontology_bytes = read_file(ontology) if ontology else None
    outputs = plan_outputs(output or [], fmt)

    async def main() -> int:
        async with extraction(settings) as (services, service):
            with helpers(run_id, workers - 1, settings.extract_lease_s):
                return await execute(
                    services,
                    service,
                    run_id,
                    settings,
                    outputs,
                    input_file=source,
                    ontology=ontology_bytes,
                    ontology_name=ontology.name if ontology else "",
                )

    raise typer.Exit(run(main()))


@runs_app.command(
    "export", cls=Command, epilog=examples("genkeep runs export RUN_ID -o graph.jsonld")
)
def export(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    output: OutputOption = None,
    fmt: FormatOption = None,
) -> None:
    """Write the documents of a completed run (Turtle, JSON-LD, grounded spans)."""
    settings = load_cli_settings()
    outputs = plan_outputs(output or [], fmt)
    if not outputs:
        raise fail("name at least one output: -o graph.ttl, -o graph.jsonld or -o spans.jsonl")

    async def main() -> Run:
        async with extraction(settings) as (services, _):
            found = await services.runs.require(settings.default_owner, run_id)
            if found.status != "completed":
                raise BadInput(
                    f"run {run_id} is {found.status} at {found.batches_done}/"
                    f"{found.total_batches} batches; `genkeep runs resume {run_id} -o ...` "
                    "finishes it and writes its outputs"
                )
            await write_outputs(services.blobs, found, outputs)
            return found

    found = run(main())
    errors.print(f"run {found.id}: {written(outputs)}", highlight=False)


@runs_app.command(
    "list", cls=Command, epilog=examples("genkeep runs list --limit 5", "genkeep runs list --json")
)
def list_runs(
    limit: Annotated[int, typer.Option(min=1, max=500, help="Runs shown, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The newest runs and where they are."""
    settings = load_cli_settings()

    async def main() -> list[Run]:
        async with extraction(settings) as (services, _):
            return await services.runs.list_runs(settings.default_owner, limit)

    found_runs = run(main())
    if as_json:
        print_json([run_document(found) for found in found_runs])
        return

    # Run ids whole even on a narrow or piped console: `runs resume` takes them.
    table = Table(
        Column("run", no_wrap=True, min_width=36),
        "status",
        "input",
        "batches",
        "entities",
        "created",
    )
    for found in found_runs:
        table.add_row(
            found.id,
            found.status,
            found.input_name,
            f"{found.batches_done}/{found.total_batches}",
            str(found.entities_found),
            found.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@runs_app.command(
    "show",
    cls=Command,
    epilog=examples("genkeep runs show RUN_ID", "genkeep runs show RUN_ID --json"),
)
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN")], as_json: JsonOption = False
) -> None:
    """A run's manifest, checkpoint and outputs."""
    settings = load_cli_settings()

    async def main() -> tuple[Run, list[WorkerShare]]:
        async with extraction(settings) as (services, _):
            found = await services.runs.require(settings.default_owner, run_id)
            return found, await services.runs.worker_shares(settings.default_owner, run_id)

    found, shares = run(main())
    if as_json:
        print_json(run_document(found))
        return
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
        "concurrency",
        "total_batches",
        "batches_done",
        "batches_failed",
        "entities_found",
        "error",
        "outputs",
        "created_at",
        "finished_at",
    ):
        table.add_row(name, _cell(getattr(found, name)))
    console.print(table)
    by_worker = shares_table(shares)
    if by_worker is not None:
        console.print(by_worker)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict):
        return json.dumps(value)  # JSON, as --json prints it, not a Python repr
    return str(value)


def run_document(found: Run) -> dict[str, Any]:
    """A run as ``--json`` prints it: the document ``GET /v1/runs/{id}`` answers."""
    from genkeep.api.routes.runs import RunOut

    return RunOut.of(found).model_dump(mode="json")


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


@runs_app.command("cancel", cls=Command, epilog=examples("genkeep runs cancel RUN_ID"))
def cancel(run_id: Annotated[str, typer.Argument(metavar="RUN")]) -> None:
    """Stop a run at its next batch boundary (it stays resumable)."""
    settings = load_cli_settings()

    async def main() -> Run:
        async with extraction(settings) as (services, _):
            return await services.runs.request_cancel(settings.default_owner, run_id)

    found = run(main())
    console.print(
        f"run {run_id}: {'cancel requested' if found.status == 'running' else found.status}"
    )


def evaluate(
    gold: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Gold annotations (JSONL).",
            show_default="the sample",
            readable=False,
        ),
    ] = None,
    ontology: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="The ontology of the gold labels.",
            show_default="the sample",
            readable=False,
        ),
    ] = None,
    extractor: Annotated[
        list[ExtractorChoice] | None,
        typer.Option(
            help="The extractor to score; repeat to compare several.",
            show_default="ner when installed, else builtin",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Precision, recall and F1 of extractors on gold annotations: mentions, entities and
    relations, overall and per class."""
    from genkeep.extract.evaluate import evaluate_report, format_table
    from genkeep.extract.index import OntologyIndex
    from genkeep.extract.llm.extractor import MemoryLlmCache
    from genkeep.extract.ontology import load_ontology
    from genkeep.extract.service import ExtractionService, default_extractors, pick_default

    settings = load_cli_settings()
    gold = gold or SAMPLES / "gold.jsonl"
    ontology = ontology or SAMPLES / "ontology.ttl"
    read_file(gold)  # refused as the other commands refuse a file they cannot read
    index = OntologyIndex(load_ontology(read_file(ontology), name=ontology.name))
    known = default_extractors(settings, MemoryLlmCache())
    default = pick_default(known, settings.extract_default)
    names = [choice.value for choice in extractor] if extractor else [default]

    async def main() -> dict[str, Any]:
        reports: dict[str, Any] = {}
        for name in names:
            chosen = ExtractionService.pick(known, name)
            reports[f"{chosen.name} {chosen.version}"] = await evaluate_report(gold, chosen, index)
        return reports

    reports = run(main())
    if as_json:
        print_json({name: report.as_json() for name, report in reports.items()})
        return
    for name, report in reports.items():
        console.print(f"[bold]{name}[/bold]  {gold.name}", highlight=False)
        console.print(format_table(report.rows()), highlight=False)


SAMPLES = Path(__file__).resolve().parents[1] / "extract" / "samples"


def register(app: typer.Typer) -> None:
    app.command(
        cls=Command,
        epilog=examples(
            "genkeep extract notes.md --ontology onto.ttl -o graph.ttl -o spans.jsonl",
            "genkeep extract notes.md --ontology onto.ttl --extractor llm -o graph.jsonld",
        ),
    )(extract)
    app.command(
        "eval",
        cls=Command,
        epilog=examples(
            "genkeep eval --extractor builtin --extractor ner",
            "genkeep eval --gold gold.jsonl --ontology onto.ttl --extractor ner",
        ),
    )(evaluate)
    runs_app.command(
        "work",
        cls=Command,
        hidden=True,
        epilog=examples("genkeep runs work RUN_ID --slots 2"),
    )(work)
    app.add_typer(runs_app, name="runs")
