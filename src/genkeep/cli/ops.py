"""``genkeep ops``: the operator's checks and clean-ups."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from genkeep.cli.common import console, open_database, run
from genkeep.cli.common import settings as load_cli_settings
from genkeep.cli.help import Command, Group, examples

if TYPE_CHECKING:
    from genkeep.db.prompts import Duplicate
    from genkeep.ops.sweep import SweepReport

ops_app = typer.Typer(
    cls=Group,
    help="Operator checks.",
    epilog=examples("genkeep ops sweep", "genkeep ops duplicates"),
    no_args_is_help=True,
)


@ops_app.command("duplicates", cls=Command, epilog=examples("genkeep ops duplicates"))
def ops_duplicates() -> None:
    """List prompt rows that share a normalized key; exit 1 if any exist."""
    from genkeep.ops.duplicates import find_duplicates

    settings = load_cli_settings()

    async def main() -> list[Duplicate]:
        database = open_database(settings)
        try:
            return await find_duplicates(database)
        finally:
            await database.dispose()

    duplicates = run(main())
    if not duplicates:
        console.print("no duplicate prompts: every (owner, profile, normalized hash) is unique")
        return
    table = Table("owner", "profile key", "normalized hash", "rows", "prompt ids")
    for d in duplicates:
        table.add_row(
            d.owner_id,
            d.profile_key[:12],
            d.normalized_hash[:12],
            str(d.count),
            ", ".join(d.prompt_ids),
        )
    console.print(table)
    raise typer.Exit(1)


@ops_app.command("sweep", cls=Command, epilog=examples("genkeep ops sweep"))
def ops_sweep() -> None:
    """Finish deletions cut short, apply retention, delete expired non-latest artifacts and
    their blobs, then orphan blobs."""
    from genkeep.ops.sweep import sweep
    from genkeep.services import close_services, open_services

    settings = load_cli_settings()

    async def main() -> SweepReport:
        services = await open_services(settings)
        try:
            return await sweep(services)
        finally:
            await close_services(services)

    report = run(main())
    # One line per figure, never wrapped: scripts and CronJob logs read them.
    console.print(
        f"artifacts deleted: {report.artifacts_deleted}, blobs deleted: "
        f"{report.blobs_deleted}, orphan blobs deleted: {report.orphans_deleted}",
        soft_wrap=True,
    )
    console.print(f"unreferenced job files deleted: {report.files_deleted}", soft_wrap=True)
    console.print(f"deletions finished: {report.deletions_finished}", soft_wrap=True)
    if report.retention:
        shown = ", ".join(f"{name} {count}" for name, count in report.retention.items())
        console.print(f"retention deleted: {shown}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(ops_app, name="ops")
