"""Schema migrations (Alembic) and the startup check that the schema is current.

An embedded SQLite database is created and migrated on first use (like ``llm`` or
``datasette``); PostgreSQL, shared by many processes, waits for ``genkeep db upgrade``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from genkeep.db.database import Database
from genkeep.db.url import is_sqlite
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
    async with _migration_lock(database):
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
    """Migrate an embedded SQLite database that is new or behind; elsewhere only check."""
    if not is_sqlite(database.url):
        await ensure_current(database)
        return
    # The usual case, an existing file at head: no lock, no lock file. A new (empty) file is
    # opened under the lock only: its first connection switches it to WAL, which needs the
    # file to itself, and SQLite refuses that at once, not after busy_timeout.
    if not _is_new_file(database) and await current_revision(database) == head_revision():
        return
    async with _migration_lock(database):
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


def _sqlite_file(database: Database) -> Path | None:
    """The file of a SQLite database; None in memory or behind a ``file:`` URI."""
    path = database.url.database if is_sqlite(database.url) else None
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def _is_new_file(database: Database) -> bool:
    file = _sqlite_file(database)
    return file is not None and (not file.exists() or file.stat().st_size == 0)


@contextlib.asynccontextmanager
async def _migration_lock(database: Database) -> AsyncIterator[None]:
    """One process migrates a SQLite file at a time: `make run` and a CLI started together
    would otherwise both create the tables, and the second fails half-way. (PostgreSQL
    migrations hold an advisory lock instead: ``dialect.migration_lock``.)"""
    file = _sqlite_file(database)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; first use is rarely concurrent there
        file = None
    if file is None:
        yield
        return
    lock = await asyncio.to_thread(open, f"{file}.migrate-lock", "a")
    try:
        # Polled, not waited for in a thread: waiters blocked in the default executor's few
        # threads left none for the holder's migration, and all of them waited for ever.
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)
        yield
    finally:
        lock.close()  # closing releases the lock
