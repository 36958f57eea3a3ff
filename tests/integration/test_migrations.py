"""Alembic's head matches the models, and a server refuses a schema that is behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from genkeep.db.database import Database
from genkeep.db.migrate import (
    alembic_config,
    current_revision,
    ensure_current,
    head_revision,
    prepare_schema,
    upgrade,
)
from genkeep.db.models import Base
from genkeep.errors import SchemaOutOfDate
from genkeep.services import open_services


async def test_head_matches_models(database: Database) -> None:
    assert await current_revision(database) == head_revision()
    async with database.engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []


async def test_schema_behind_is_refused_with_the_fix(database: Database, settings: object) -> None:
    async with database.transaction() as session:
        await session.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(SchemaOutOfDate, match="genkeep db upgrade"):
        await ensure_current(database)
    with pytest.raises(SchemaOutOfDate):
        await open_services(settings)  # type: ignore[arg-type]


async def test_sqlite_behind_is_migrated_on_first_use_postgresql_is_refused(
    database: Database, backend: str
) -> None:
    """An embedded database follows genkeep's upgrades by itself; a shared one waits for
    `genkeep db upgrade`, run once by whoever deploys."""
    previous = "0003"
    await _downgrade(database, previous)
    assert await current_revision(database) == previous
    if backend == "sqlite":
        await prepare_schema(database)
        assert await current_revision(database) == head_revision()
    else:
        with pytest.raises(SchemaOutOfDate, match="genkeep db upgrade"):
            await prepare_schema(database)
        assert await current_revision(database) == previous
        await upgrade(database)
        await prepare_schema(database)


async def test_tables_without_a_revision_are_not_migrated(database: Database) -> None:
    async with database.transaction() as session:
        await session.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(SchemaOutOfDate):
        await prepare_schema(database)


async def test_a_revision_from_a_newer_genkeep(database: Database, backend: str) -> None:
    """The embedded file is refused (nothing would migrate it back); a shared PostgreSQL
    schema is served, as old pods must during a rolling upgrade (expand, then contract)."""
    async with database.transaction() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    if backend == "sqlite":
        with pytest.raises(SchemaOutOfDate, match="9999"):
            await prepare_schema(database)
    else:
        await prepare_schema(database)


async def _downgrade(database: Database, revision: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(database), revision)


async def test_concurrent_first_use_of_a_new_sqlite_file_migrates_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    # More users than the default executor has threads (cpus + 4): waiting for the lock
    # must leave the one who holds it a thread to migrate with.
    databases = [Database(url) for _ in range((os.cpu_count() or 1) + 6)]
    try:
        await asyncio.wait_for(asyncio.gather(*(prepare_schema(d) for d in databases)), 120)
        assert await current_revision(databases[0]) == head_revision()
    finally:
        for database in databases:
            await database.dispose()
