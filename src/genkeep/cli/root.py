"""The ``genkeep`` command line: the app, its global options, ``info`` and ``generate``; each
command group is a module of its own (db, keys, ops, runs, serve)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any

import typer

from genkeep import __version__
from genkeep.cli import db, keys, ops, owners, runs, serve, usage
from genkeep.cli.common import (
    database_failure,
    errors,
    fail,
    run,
    run_raw,
    set_debug,
    show_notices,
)
from genkeep.cli.common import main as run_app
from genkeep.cli.common import settings as load_cli_settings
from genkeep.cli.help import Command, Group, examples
from genkeep.config import Settings, default_data_dir
from genkeep.errors import GenkeepError

app = typer.Typer(
    cls=Group,
    help=(
        "genkeep: generate once, keep it durable.\n\n"
        f"Data (database, blobs) lives in {default_data_dir()} unless GENKEEP_DATA_DIR or "
        "GENKEEP_DATABASE_URL say otherwise; `genkeep info` shows what is in use. "
        "The embedded SQLite database is created on first use."
    ),
    epilog=examples(
        "genkeep info",
        "genkeep extract notes.md --ontology onto.ttl -o graph.ttl",
        "genkeep serve",
    ),
    no_args_is_help=True,
)


def _show_version(shown: bool) -> None:
    if shown:
        sys.stdout.write(f"genkeep {__version__}\n")
        raise typer.Exit()


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    set_debug(debug)


@app.command(cls=Command, epilog=examples("genkeep info"))
def info() -> None:
    """Where genkeep keeps its data, and the state of the database; exit 1 if it is unusable."""
    settings = load_cli_settings()
    where, state, problem = _database_state(settings.database_url, settings.database_in_data_dir)
    blobs = settings.blob_dir or settings.data_dir / "blobs"
    rows = {
        "data dir": str(settings.data_dir),
        "database": f"{where} ({state})",
        "blobs": str(blobs) if settings.blob_backend == "local" else settings.blob_backend,
        "extractors": _extractors(settings),
        "env": settings.env,
    }
    width = max(map(len, rows))
    for name, value in rows.items():
        sys.stdout.write(f"{name:<{width}}  {value}\n")
    if problem is not None:
        raise fail(problem)


def _extractors(settings: Settings) -> str:
    """The extractors this process can run, and the one a run gets when it names none."""
    from genkeep.extract.service import llm_configured, ner_available

    names = ["builtin"]
    if ner_available(settings):
        names.append(f"ner ({settings.ner_model})")
    if llm_configured(settings):
        names.append("llm")
    default = settings.extract_default
    if default == "auto":
        default = "ner" if len(names) > 1 and names[1].startswith("ner") else "builtin"
    return f"{', '.join(names)}; default {default}"


def _database_state(url: str, in_data_dir: bool) -> tuple[str, str, str | None]:
    """Where the database is, its state, and what is wrong with it (None if nothing).

    Reads only: a database not made yet is left unmade, and one that fails is described.
    """
    from genkeep.db.database import Database
    from genkeep.db.migrate import current_revision, head_revision
    from genkeep.db.url import async_url

    try:
        database = Database(url)
    except GenkeepError as exc:
        # The data folder itself is made on first use; any other missing folder is an error.
        if in_data_dir:
            return str(async_url(url).database), "not created yet: made on first use", None
        return url, "unusable", exc.detail
    where = database.driver.location()
    if database.driver.is_new():
        return where, "not created yet: made on first use", None

    async def main() -> str | None:
        try:
            return await current_revision(database)
        finally:
            await database.dispose()

    try:
        revision = run_raw(main())
    except GenkeepError as exc:
        return where, "unusable", exc.detail
    except Exception as exc:
        problem = database_failure(exc, url)
        if problem is None:
            raise
        return where, "unavailable", problem
    head = head_revision()
    if revision is None:
        state = "not created yet: made on first use" if database.driver.embedded else "empty"
        return where, state, None
    return where, f"schema {revision}" + ("" if revision == head else f", behind {head}"), None


@app.command(
    cls=Command,
    epilog=examples('genkeep generate "Plan a launch"', 'genkeep generate "Plan a launch" --json'),
)
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


serve.register(app)
runs.register(app)
db.register(app)
keys.register(app)
usage.register(app)
ops.register(app)
owners.register(app)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    show_notices()
    run_app(app)


if __name__ == "__main__":
    main()
