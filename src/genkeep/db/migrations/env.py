"""Alembic environment: runs migrations on genkeep's async engine, whatever the database."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from genkeep.db.database import Database
from genkeep.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection, batch: bool) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=batch,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    database = Database(config.get_main_option("sqlalchemy.url") or "")
    try:
        # One write transaction around every migration: a second `db upgrade` (which waits
        # for the driver's migration lock first) reads the revision the first committed.
        async with database.writing() as connection:
            batch = database.driver.rebuilds_tables_to_alter
            await connection.run_sync(_run, batch)
    finally:
        await database.dispose()


asyncio.run(_run_async())
