"""Alembic environment: runs migrations on genkeep's async engine for either backend."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from genkeep.db.database import Database
from genkeep.db.dialect import migration_lock
from genkeep.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    database = Database(config.get_main_option("sqlalchemy.url") or "")
    try:
        # One write transaction around the lock and every migration: a second `db upgrade`
        # waits, then reads the revision the first one committed and has nothing to do.
        async with database.writing() as connection:
            lock = migration_lock(database.backend)
            if lock is not None:
                await connection.execute(lock)
            await connection.run_sync(_run)
    finally:
        await database.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
