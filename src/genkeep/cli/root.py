"""The ``genkeep`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from genkeep.cli.common import console, errors, fail, run, set_debug, show_notices
from genkeep.cli.common import main as run_app
from genkeep.cli.common import settings as load_cli_settings
from genkeep.cli.help import Command, Group
from genkeep.cli.runs import register as register_runs
from genkeep.config import Settings, default_data_dir, set_prometheus_multiproc_dir

app = typer.Typer(
    cls=Group,
    help=(
        "genkeep: generate once, keep it durable.\n\n"
        f"Data (database, blobs) lives in {default_data_dir()} unless GENKEEP_DATA_DIR or "
        "GENKEEP_DATABASE_URL say otherwise; `genkeep info` shows what is in use. "
        "The embedded SQLite database is created on first use."
    ),
    no_args_is_help=True,
)
db_app = typer.Typer(cls=Group, help="Database schema migrations.", no_args_is_help=True)
ops_app = typer.Typer(cls=Group, help="Operator checks.", no_args_is_help=True)
keys_app = typer.Typer(cls=Group, help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ops_app, name="ops")
app.add_typer(keys_app, name="keys")


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")
    ] = False,
) -> None:
    set_debug(debug)


@app.command(cls=Command)
def info() -> None:
    """Where genkeep keeps its data, and the state of the database."""
    from genkeep.db.database import Database
    from genkeep.db.migrate import current_revision, head_revision
    from genkeep.extract.service import llm_configured

    settings = load_cli_settings()
    database = Database(settings.database_url)

    async def main() -> str | None:
        try:
            return await current_revision(database)
        finally:
            await database.dispose()

    revision, head = run(main()), head_revision()
    if revision is None:
        state = "not created yet: made on first use" if database.driver.embedded else "empty"
    else:
        state = f"schema {revision}" + ("" if revision == head else f", behind {head}")
    blobs = settings.blob_dir or settings.data_dir / "blobs"
    where = database.driver.location()
    rows = {
        "data dir": str(settings.data_dir),
        "database": f"{where} ({state})",
        "blobs": str(blobs) if settings.blob_backend == "local" else settings.blob_backend,
        "extractors": "builtin" + (", llm" if llm_configured(settings) else ""),
        "env": settings.env,
    }
    width = max(map(len, rows))
    for name, value in rows.items():
        sys.stdout.write(f"{name:<{width}}  {value}\n")


@app.command(cls=Command)
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default GENKEEP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default GENKEEP_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Start the HTTP API (OpenAPI docs at /docs)."""
    # The app factory reads its settings again in each server process: the flags go with it.
    if host:
        os.environ["GENKEEP_HOST"] = host
    if port:
        os.environ["GENKEEP_PORT"] = str(port)
    settings = load_cli_settings()
    run(_check_startable(settings))
    metrics_dir = settings.data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    # Every server process writes its counters here so /metrics adds them up.
    set_prometheus_multiproc_dir(str(metrics_dir.resolve()))
    import uvicorn

    uvicorn.run(
        "genkeep.api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_s,
    )


async def _check_startable(settings: Settings) -> None:
    from genkeep.db.database import Database
    from genkeep.db.migrate import prepare_schema
    from genkeep.services import check_durable

    check_durable(settings)
    database = Database(settings.database_url)
    try:
        await prepare_schema(database)
    finally:
        await database.dispose()


@db_app.command("upgrade", cls=Command)
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply schema migrations."""
    from genkeep.db.database import Database
    from genkeep.db.migrate import current_revision, upgrade

    settings = load_cli_settings()

    async def main() -> str | None:
        database = Database(settings.database_url)
        try:
            await upgrade(database, revision)
            return await current_revision(database)
        finally:
            await database.dispose()

    console.print(f"database at revision {run(main())}")


@db_app.command("current", cls=Command)
def db_current() -> None:
    """Show the schema revision of the database and of this genkeep."""
    from genkeep.db.database import Database
    from genkeep.db.migrate import current_revision, head_revision, known_revisions

    settings = load_cli_settings()

    async def main() -> str | None:
        database = Database(settings.database_url)
        try:
            return await current_revision(database)
        finally:
            await database.dispose()

    current, head = run(main()), head_revision()
    if current == head:
        state = "up to date"
    elif current is not None and current not in known_revisions():
        state = "newer than this genkeep: migrated by a newer release"
    else:
        state = "behind: run `genkeep db upgrade`"
    console.print(f"database: {current or 'none'}  code: {head}  ({state})")
    if current != head:
        raise typer.Exit(1)


@db_app.command("revision", cls=Command)
def db_revision(message: Annotated[str, typer.Argument(help="What the migration does.")]) -> None:
    """Write a new migration, autogenerated from the models against the current database."""
    from alembic import command

    from genkeep.db.database import Database
    from genkeep.db.migrate import alembic_config

    settings = load_cli_settings()
    command.revision(alembic_config(Database(settings.database_url)), message, autogenerate=True)


@app.command(cls=Command)
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    profile: Annotated[str | None, typer.Option(help="Generator profile.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Generate a new version.")] = False,
    no_store: Annotated[bool, typer.Option("--no-store", help="Persist nothing.")] = False,
    max_age: Annotated[
        int | None, typer.Option(min=0, help="Max age of a stored result, s.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full answer as JSON.")] = False,
) -> None:
    """Generate once from the shell: same service, same database as the API."""
    from genkeep.generate.cache_control import CacheControl
    from genkeep.services import close_services, open_services

    settings = load_cli_settings()
    cache = CacheControl(no_cache=no_cache, no_store=no_store, max_age=max_age)

    async def main() -> dict[str, Any]:
        services = await open_services(settings)
        try:
            outcome = await services.generate.generate(
                settings.default_owner, prompt, profile, cache
            )
            return {name: getattr(outcome, name) for name in outcome.__slots__}
        finally:
            await close_services(services)

    answer = run(main())
    if as_json:
        sys.stdout.write(json.dumps(answer, indent=2) + "\n")
        return
    origin = "cached" if answer["cached"] else "generated"
    errors.print(f"[dim]{origin} · prompt {answer['prompt_id']} · result {answer['result_id']}[/]")
    sys.stdout.write(answer["content"])


@ops_app.command("duplicates", cls=Command)
def ops_duplicates() -> None:
    """List prompt rows that share a normalized key; exit 1 if any exist."""
    from genkeep.db.database import Database
    from genkeep.db.migrate import prepare_schema
    from genkeep.db.prompts import Duplicate, PromptStore

    settings = load_cli_settings()

    async def main() -> list[Duplicate]:
        database = Database(settings.database_url)
        try:
            await prepare_schema(database)
            return await PromptStore(database).find_duplicates()
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


@keys_app.command("create", cls=Command)
def keys_create(
    owner: Annotated[str, typer.Option(help="The owner the key acts as.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create an API key; the token is printed once and stored only as a hash."""
    from genkeep.api.deps import OWNER_ID
    from genkeep.db.database import Database
    from genkeep.db.keys import ApiKeyStore
    from genkeep.db.migrate import prepare_schema

    if not OWNER_ID.match(owner):
        raise fail("owner must be 1-64 characters of letters, digits, '.', '_' or '-'")
    settings = load_cli_settings()

    async def main() -> tuple[str, str]:
        database = Database(settings.database_url)
        try:
            await prepare_schema(database)
            key, token = await ApiKeyStore(database).create(owner, name)
            return key.id, token
        finally:
            await database.dispose()

    key_id, token = run(main())
    errors.print(f"[dim]key {key_id} for owner {owner}; the token is shown only now:[/]")
    sys.stdout.write(token + "\n")


@keys_app.command("revoke", cls=Command)
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (gk_<id>_...).")]) -> None:
    """Revoke a key; requests with it answer 401 from now on."""
    from genkeep.db.database import Database
    from genkeep.db.keys import ApiKeyStore
    from genkeep.db.migrate import prepare_schema

    settings = load_cli_settings()

    async def main() -> bool:
        database = Database(settings.database_url)
        try:
            await prepare_schema(database)
            return await ApiKeyStore(database).revoke(key_id.removeprefix("gk_").split("_")[0])
        finally:
            await database.dispose()

    if not run(main()):
        raise fail(f"no active key {key_id}")
    console.print(f"revoked key {key_id}")


@keys_app.command("list", cls=Command)
def keys_list(
    owner: Annotated[str | None, typer.Option(help="Only this owner's keys.")] = None,
) -> None:
    """List keys (never their tokens)."""
    from genkeep.db.database import Database
    from genkeep.db.keys import ApiKeyStore
    from genkeep.db.migrate import prepare_schema
    from genkeep.db.models import ApiKey

    settings = load_cli_settings()

    async def main() -> list[ApiKey]:
        database = Database(settings.database_url)
        try:
            await prepare_schema(database)
            return await ApiKeyStore(database).list_keys(owner)
        finally:
            await database.dispose()

    # Ids whole even on a narrow console: `keys revoke` takes them.
    table = Table(
        Column("id", no_wrap=True, min_width=16),
        "owner",
        "name",
        "created",
        "revoked",
    )
    for key in run(main()):
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        table.add_row(
            key.id, key.owner_id, key.name, key.created_at.isoformat(timespec="seconds"), revoked
        )
    console.print(table)


@app.command(cls=Command)
def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Tasks run at once.")] = None,
) -> None:
    """Run tasks until SIGTERM/SIGINT; then finish or release the tasks held, and exit."""
    import signal

    from genkeep.services import close_services, open_services
    from genkeep.worker.registry import load_handlers
    from genkeep.worker.runner import Worker

    settings = load_cli_settings()
    load_handlers(settings.task_modules)

    async def main() -> None:
        services = await open_services(settings)
        runner = Worker(services, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runner.stop)
        errors.print(
            f"[dim]worker {runner.worker_id} on {services.database.describe()}, "
            f"concurrency {runner.concurrency}[/]"
        )
        try:
            await runner.run()
        finally:
            await close_services(services)

    run(main())


@ops_app.command("sweep", cls=Command)
def ops_sweep() -> None:
    """Delete expired non-latest artifacts and their blobs, then orphan blobs."""
    from genkeep.ops.sweep import SweepReport, sweep
    from genkeep.services import close_services, open_services

    settings = load_cli_settings()

    async def main() -> SweepReport:
        services = await open_services(settings)
        try:
            return await sweep(services)
        finally:
            await close_services(services)

    report = run(main())
    console.print(
        f"artifacts deleted: {report.artifacts_deleted}, blobs deleted: "
        f"{report.blobs_deleted}, orphan blobs deleted: {report.orphans_deleted}"
    )
    console.print(f"unreferenced job files deleted: {report.files_deleted}")


register_runs(app)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    show_notices()
    run_app(app)


if __name__ == "__main__":
    main()
