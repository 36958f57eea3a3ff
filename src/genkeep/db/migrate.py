"""Schema migrations (Alembic) and the startup check that the schema is current.

An embedded database (a file) is created and migrated on first use (like ``llm`` or
``datasette``); a server's database, shared by many processes, waits for
``genkeep db upgrade``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from genkeep.db.database import Database
from genkeep.errors import SchemaOutOfDate

# Notes a user should see once (the CLI prints them plainly; servers log them).
notices = logging.getLogger("genkeep.notice")

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)
_newer_seen: set[str] = set()  # revisions already warned about (readiness asks often)


def alembic_config(database: Database | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if database is not None:
        # Alembic's ini interpolation treats % specially.
        url = database.url.render_as_string(hide_password=False).replace("%", "%%")
        config.set_main_option("sqlalchemy.url", url)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def known_revisions() -> set[str]:
    """Every revision this genkeep ships, head and ancestors."""
    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


def _is_newer(current: str | None) -> bool:
    """Whether the database is at a revision this genkeep does not ship (a later one)."""
    if current is None or current in known_revisions():
        return False
    if current not in _newer_seen:
        _newer_seen.add(current)
        log.warning("database schema %s is newer than this genkeep's %s", current, head_revision())
    return True


async def current_revision(database: Database) -> str | None:
    async with database.engine.connect() as connection:

        def _read(sync_connection: object) -> str | None:
            if not inspect(sync_connection).has_table("alembic_version"):
                return None
            row = sync_connection.execute(  # type: ignore[attr-defined]
                text("SELECT version_num FROM alembic_version")
            ).first()
            return None if row is None else str(row[0])

        return await connection.run_sync(_read)


async def upgrade(database: Database, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (runs Alembic in a thread: it drives its own loop).

    A schema that a newer genkeep migrated is left as it is: rolling the code back (whose
    migration Job runs again, e.g. as an Argo CD PreSync hook) must not fail on it.
    """
    async with database.driver.migration_lock():
        await _upgrade(database, revision)


async def _upgrade(database: Database, revision: str = "head") -> None:
    if _is_newer(await current_revision(database)):
        return
    config = alembic_config(database)
    await asyncio.to_thread(command.upgrade, config, revision)


async def ensure_current(database: Database) -> None:
    """Refuse to run on a schema that is behind, naming the command that fixes it; accept
    one that a newer genkeep migrated."""
    current, head = await current_revision(database), head_revision()
    if _is_newer(current):
        # A newer genkeep's migration ran first (expand, then contract: see docs/deploy.md).
        # Refusing here would take every old pod out of service before a new one is ready.
        return
    if current != head:
        raise SchemaOutOfDate(
            f"database {database.describe()} is at schema revision {current or 'none'}, "
            f"this genkeep needs {head}: run `genkeep db upgrade`"
        )


async def prepare_schema(database: Database) -> None:
    """Migrate an embedded database that is new or behind; elsewhere only check."""
    if not database.driver.embedded:
        await ensure_current(database)
        return
    # The usual case, an existing database at head: no lock, no lock file. A new one is
    # opened under the lock only: its first connection switches its journal mode, which
    # needs the file to itself, and is refused at once, not after the busy timeout.
    if not database.driver.is_new() and await current_revision(database) == head_revision():
        return
    async with database.driver.migration_lock():
        current, head = await current_revision(database), head_revision()
        if current == head:
            return
        if current is None and await _has_tables(database):
            raise SchemaOutOfDate(
                f"database {database.describe()} has tables but no schema revision: not made "
                "by genkeep, or its alembic_version was lost; it is not migrated automatically"
            )
        if current is not None and current not in known_revisions():
            raise SchemaOutOfDate(
                f"database {database.describe()} is at schema revision {current}, which this "
                f"genkeep does not know (made by a newer genkeep?); upgrade genkeep"
            )
        await _upgrade(database)
    if current is None:
        notices.info("created the database %s", database.url.database)
    else:
        notices.info("migrated the database %s from %s to %s", database.url.database, current, head)


async def _has_tables(database: Database) -> bool:
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return bool(names)
