"""Alembic's head matches the models, and a server refuses a schema that is behind."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from genkeep.db.database import Database
from genkeep.db.migrate import current_revision, ensure_current, head_revision
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
