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
) -> None:
    """Create an API key; the token is printed once and stored only as a hash."""
    from genkeep.api.deps import OWNER_ID
    from genkeep.db.keys import ApiKeyStore
    from genkeep.db.migrate import prepare_schema

    if not OWNER_ID.match(owner):
        raise fail("owner must be 1-64 characters of letters, digits, '.', '_' or '-'")
    settings = load_cli_settings()

    async def main() -> tuple[str, str]:
        database = open_database(settings)
        try:
            await prepare_schema(database)
            key, token = await ApiKeyStore(database).create(owner, name)
            return key.id, token
        finally:
            await database.dispose()

    key_id, token = run(main())
    errors.print(f"[dim]key {key_id} for owner {owner}; the token is shown only now:[/]")
    sys.stdout.write(token + "\n")


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
