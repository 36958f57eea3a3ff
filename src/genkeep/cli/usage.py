"""``genkeep usage``: an owner's usage ledger, summed per day, profile or key."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from genkeep.cli.common import console, fail, open_database, run
from genkeep.cli.common import settings as load_cli_settings
from genkeep.cli.help import Command, examples


def usage(
    owner: Annotated[
        str | None, typer.Option(help="The owner (default: the default owner).")
    ] = None,
    group: Annotated[str, typer.Option("--by", help="Sum per day, profile or key.")] = "day",
    since: Annotated[str | None, typer.Option(help="From this day on (YYYY-MM-DD).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Tokens and cost of generator calls, and what cache hits saved."""
    from genkeep.db.migrate import prepare_schema
    from genkeep.db.spend import SpendStore

    if group not in ("day", "profile", "key"):
        raise fail("--by is day, profile or key")
    settings = load_cli_settings()

    async def main() -> list[dict[str, Any]]:
        database = open_database(settings)
        try:
            await prepare_schema(database)
            return await SpendStore(database).usage(
                owner or settings.default_owner,
                group,  # type: ignore[arg-type]
                since,
            )
        finally:
            await database.dispose()

    rows = run(main())
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(
        group, "calls", "hits", "tokens in", "cached in", "tokens out", "cost $", "saved $"
    )
    for row in rows:
        table.add_row(
            str(row[group] or "-"),
            str(row["calls"]),
            str(row["hits"]),
            str(row["prompt_tokens"]),
            str(row["cached_tokens"]),
            str(row["completion_tokens"]),
            f"{row['cost_usd']:.6f}",
            f"{row['saved_usd']:.6f}",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command(
        "usage",
        cls=Command,
        epilog=examples("genkeep usage --owner alice --by profile", "genkeep usage --json"),
    )(usage)
