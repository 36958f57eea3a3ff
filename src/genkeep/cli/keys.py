"""``genkeep keys``: API keys, created, listed and revoked from the shell."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from genkeep.cli.common import console, errors, fail, open_database, run
from genkeep.cli.common import settings as load_cli_settings
from genkeep.cli.help import Command, Group, examples

if TYPE_CHECKING:
    from genkeep.db.models import ApiKey
    from genkeep.db.spend import Limits

keys_app = typer.Typer(
    cls=Group,
    help="API keys.",
    epilog=examples("genkeep keys create --owner alice --name laptop", "genkeep keys list"),
    no_args_is_help=True,
)


@keys_app.command(
    "create", cls=Command, epilog=examples("genkeep keys create --owner alice --name laptop")
)
def keys_create(
    owner: Annotated[str, typer.Option(help="The owner the key acts as.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget: BudgetOption = None,
    period: PeriodOption = "day",
    lifetime: LifetimeOption = None,
) -> None:
    """Create an API key; the token is printed once and stored only as a hash."""
    from genkeep.api.deps import OWNER_ID
    from genkeep.db.keys import ApiKeyStore
    from genkeep.db.migrate import prepare_schema
    from genkeep.db.spend import SpendStore

    if not OWNER_ID.match(owner):
        raise fail("owner must be 1-64 characters of letters, digits, '.', '_' or '-'")
    settings = load_cli_settings()
    limits = _limits(rpm, tpm, budget, period, lifetime)

    async def main() -> tuple[str, str]:
        database = open_database(settings)
        try:
            await prepare_schema(database)
            key, token = await ApiKeyStore(database).create(owner, name)
            if limits.any:
                await SpendStore(database).set_limits(f"key:{key.id}", limits)
            return key.id, token
        finally:
            await database.dispose()

    key_id, token = run(main())
    errors.print(f"[dim]key {key_id} for owner {owner}; the token is shown only now:[/]")
    sys.stdout.write(token + "\n")


@keys_app.command(
    "update",
    cls=Command,
    epilog=examples(
        "genkeep keys update 3f9a0c2d41b7e865 --rpm 60 --budget 5",
        "genkeep keys update --owner alice --budget 100 --period month",
    ),
)
def keys_update(
    key_id: Annotated[str | None, typer.Argument(help="The key id; or give --owner.")] = None,
    owner: Annotated[
        str | None, typer.Option(help="Set the limits of this owner (all its keys together).")
    ] = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget: BudgetOption = None,
    period: PeriodOption = "day",
    lifetime: LifetimeOption = None,
) -> None:
    """Replace the limits of a key or an owner; a limit not given is removed."""
    from genkeep.db.migrate import prepare_schema
    from genkeep.db.spend import SpendStore

    if (key_id is None) == (owner is None):
        raise fail("give a key id or --owner, not both")
    subject = f"owner:{owner}" if owner else f"key:{(key_id or '').removeprefix('gk_')[:16]}"
    limits = _limits(rpm, tpm, budget, period, lifetime)
    settings = load_cli_settings()

    async def main() -> None:
        database = open_database(settings)
        try:
            await prepare_schema(database)
            await SpendStore(database).set_limits(subject, limits)
        finally:
            await database.dispose()

    run(main())
    console.print(f"limits of {subject}: {_describe(limits)}")


RpmOption = Annotated[int | None, typer.Option(min=1, help="Requests per minute.")]
TpmOption = Annotated[int | None, typer.Option(min=1, help="Tokens per minute.")]
BudgetOption = Annotated[float | None, typer.Option(min=0, help="USD per --period.")]
PeriodOption = Annotated[str, typer.Option(help="The budget's period: day or month.")]
LifetimeOption = Annotated[float | None, typer.Option(min=0, help="A lifetime cap, USD.")]


def _limits(
    rpm: int | None, tpm: int | None, budget: float | None, period: str, lifetime: float | None
) -> Limits:
    from genkeep.db.spend import Limits

    if period not in ("day", "month"):
        raise fail("--period is day or month")
    return Limits(
        rpm=rpm,
        tpm=tpm,
        budget_micros=None if budget is None else round(budget * 1_000_000),
        budget_period=period if budget is not None else None,
        lifetime_micros=None if lifetime is None else round(lifetime * 1_000_000),
    )


def _describe(limits: Limits) -> str:
    parts = []
    if limits.rpm:
        parts.append(f"{limits.rpm} requests/min")
    if limits.tpm:
        parts.append(f"{limits.tpm} tokens/min")
    if limits.budget_micros is not None:
        parts.append(f"${limits.budget_micros / 1e6:g} per {limits.budget_period}")
    if limits.lifetime_micros is not None:
        parts.append(f"${limits.lifetime_micros / 1e6:g} lifetime")
    return ", ".join(parts) or "none"


@keys_app.command("revoke", cls=Command, epilog=examples("genkeep keys revoke 3f9a0c2d41b7e865"))
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (gk_<id>_...).")]) -> None:
    """Revoke a key; requests with it answer 401 from now on."""
    from genkeep.db.keys import ApiKeyStore
    from genkeep.db.migrate import prepare_schema

    settings = load_cli_settings()

    async def main() -> bool:
        database = open_database(settings)
        try:
            await prepare_schema(database)
            return await ApiKeyStore(database).revoke(key_id.removeprefix("gk_").split("_")[0])
        finally:
            await database.dispose()

    if not run(main()):
        raise fail(f"no active key {key_id}")
    console.print(f"revoked key {key_id}")


@keys_app.command(
    "list",
    cls=Command,
    epilog=examples("genkeep keys list --owner alice", "genkeep keys list --json"),
)
def keys_list(
    owner: Annotated[str | None, typer.Option(help="Only this owner's keys.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON array of the keys instead of a table.")
    ] = False,
) -> None:
    """List keys (never their tokens)."""
    from genkeep.db.keys import ApiKeyStore
    from genkeep.db.migrate import prepare_schema

    settings = load_cli_settings()

    async def main() -> list[ApiKey]:
        database = open_database(settings)
        try:
            await prepare_schema(database)
            return await ApiKeyStore(database).list_keys(owner)
        finally:
            await database.dispose()

    keys = run(main())
    if as_json:
        sys.stdout.write(json.dumps([key_document(key) for key in keys], indent=2) + "\n")
        return
    # Ids whole even on a narrow console: `keys revoke` takes them.
    table = Table(
        Column("id", no_wrap=True, min_width=16),
        "owner",
        "name",
        "created",
        "revoked",
    )
    for key in keys:
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        table.add_row(
            key.id, key.owner_id, key.name, key.created_at.isoformat(timespec="seconds"), revoked
        )
    console.print(table)


def key_document(key: ApiKey) -> dict[str, Any]:
    """A key as ``keys list --json`` prints it: never its token or hash."""
    return {
        "id": key.id,
        "owner": key.owner_id,
        "name": key.name,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
