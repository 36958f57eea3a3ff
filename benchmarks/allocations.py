"""Artifact version allocation under contention: many transactions bumping one counter row."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import text

from genkeep.db.artifacts import ArtifactStore
from genkeep.db.database import Database
from genkeep.db.jobs import Audit, JobStore

KIND = "bench"


@dataclass(frozen=True, slots=True)
class AllocationResult:
    tasks: int
    per_task: int
    pool_size: int
    seconds: float
    per_second: float
    distinct: bool
    contiguous: bool
    first: int
    last: int


async def measure_allocations(dsn: str, tasks: int = 64, per_task: int = 50) -> AllocationResult:
    """``tasks`` coroutines each allocate ``per_task`` versions, one transaction apiece."""
    # One connection per coroutine, so all ``tasks`` transactions really run at once.
    database = Database(dsn, pool_size=tasks)
    try:
        audit = Audit(actor="bench", trace_id=secrets.token_hex(16))
        job = await JobStore(database).create("bench", {"title": "allocation bench"}, audit)
        store = ArtifactStore(database)
        versions: list[int] = []

        async def allocate_many() -> None:
            for _ in range(per_task):
                async with database.transaction() as session:
                    versions.append(await store.allocate_version(session, job.id, KIND))

        # Open the pool's connections first so the timing is allocation, not connecting.
        await asyncio.gather(*(_touch(database) for _ in range(tasks)))
        started = time.perf_counter()
        await asyncio.gather(*(allocate_many() for _ in range(tasks)))
        seconds = time.perf_counter() - started
    finally:
        await database.dispose()
    total = tasks * per_task
    ordered = sorted(versions)
    return AllocationResult(
        tasks=tasks,
        per_task=per_task,
        pool_size=tasks,
        seconds=seconds,
        per_second=total / seconds,
        distinct=len(set(versions)) == len(versions) == total,
        contiguous=ordered == list(range(1, total + 1)),
        first=ordered[0],
        last=ordered[-1],
    )


async def _touch(database: Database) -> None:
    async with database.transaction() as session:
        await session.execute(text("SELECT 1"))
        await asyncio.sleep(0.05)
