"""Concurrent read-then-write transactions all commit, on both backends."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from genkeep.db.database import Database
from genkeep.db.jobs import Audit, JobStore
from genkeep.db.models import Job

AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")


async def test_read_then_write_transactions_do_not_fail_under_concurrency(db_url: str) -> None:
    # On SQLite a deferred transaction that reads, then writes after another writer
    # committed, fails its lock upgrade at once ("database is locked"; busy_timeout does not
    # apply). Write transactions therefore begin IMMEDIATE and queue for the lock instead.
    database = Database(db_url)
    try:
        job = await JobStore(database).create("alice", {"title": "counter"}, AUDIT)

        async def bump() -> None:
            async with database.transaction() as session:
                seen = (await session.execute(select(Job.version).where(Job.id == job.id))).one()
                await asyncio.sleep(0.005)  # let the others read the same snapshot
                await session.execute(
                    update(Job)
                    .where(Job.id == job.id)
                    .values(title=f"seen {seen.version}", version=Job.version + 1)
                )

        outcomes = await asyncio.gather(*(bump() for _ in range(20)), return_exceptions=True)
        assert [o for o in outcomes if o is not None] == []
        # Counted in the database: every one of the twenty writes committed.
        async with database.reading() as session:
            version = (await session.execute(select(Job.version).where(Job.id == job.id))).one()
        assert version.version == 1 + 20
    finally:
        await database.dispose()
