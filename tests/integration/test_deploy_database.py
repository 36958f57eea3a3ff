"""What a deployment asks of the database: concurrent migration Jobs, rolling upgrades
(old pods on a newer schema), libpq URLs with sslmode, and the KEDA trigger's query."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text, update

from genkeep.config import Settings
from genkeep.db.database import Database
from genkeep.db.drivers.base import TASKS_CHANNEL
from genkeep.db.drivers.wakeups import Wakeups
from genkeep.db.jobs import Audit
from genkeep.db.migrate import current_revision, ensure_current, head_revision, upgrade
from genkeep.db.models import RunBatch, Task
from genkeep.db.tasks import Submission
from genkeep.db.types import utcnow
from genkeep.db.url import async_url
from genkeep.errors import SchemaOutOfDate
from tests.support.kubernetes import find, render
from tests.support.postgres import dsn
from tests.support.server import genkeep_command
from tests.support.services import opened_services

POSTGRESQL_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")


def test_two_migrations_at_once_on_an_empty_database_both_succeed(
    empty_db_url: str, tmp_path: Path
) -> None:
    """Two migration Jobs may run at once (a re-applied Job, a Helm hook and a manual run)."""
    env = {"GENKEEP_DATABASE_URL": empty_db_url, "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.Popen(
            [*genkeep_command(), "db", "upgrade"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [(run.communicate(timeout=120)[0], run.returncode) for run in runs]
    head = head_revision()
    assert outputs == [(f"database at revision {head}\n", 0)] * 2


async def test_an_older_genkeep_accepts_a_newer_schema_and_refuses_an_older_one(
    database: Database,
) -> None:
    """Expand, then contract: pods of the previous release keep serving (and stay ready)
    after the new release's migration ran; a schema behind this release is refused."""
    async with database.transaction() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    await ensure_current(database)
    await upgrade(database)  # a rollback's migration Job: nothing to do, and no failure
    assert await current_revision(database) == "9999_future"
    async with database.transaction() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    with pytest.raises(SchemaOutOfDate, match="genkeep db upgrade"):
        await ensure_current(database)


def test_libpq_sslmode_is_asyncpg_ssl() -> None:
    url = async_url("postgresql://genkeep:pw@db.example.com/genkeep?sslmode=verify-full")
    assert (url.drivername, dict(url.query)) == ("postgresql+asyncpg", {"ssl": "verify-full"})
    kept = async_url("postgresql://h/db?sslmode=require&ssl=verify-full")
    assert dict(kept.query) == {"ssl": "verify-full"}


@POSTGRESQL_ONLY  # sslmode is a PostgreSQL URL parameter
async def test_a_libpq_url_with_sslmode_connects(db_url: str) -> None:
    """The Secret's URL (libpq form, as KEDA and psql read it) works for genkeep too."""
    database = Database(f"{dsn(db_url)}?sslmode=disable")
    wakeups = Wakeups(database.driver)
    try:
        assert await current_revision(database) == head_revision()
        await wakeups.start()  # workers LISTEN on a connection of their own
        async with database.transaction() as session:
            await session.execute(text(f"NOTIFY {TASKS_CHANNEL}"))
        await asyncio.wait_for(wakeups.wait(30), timeout=10)  # woken, not timed out
    finally:
        await wakeups.stop()
        await database.dispose()


@POSTGRESQL_ONLY  # KEDA's postgresql trigger queries PostgreSQL only
async def test_keda_query_counts_the_tasks_that_need_a_worker_now(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    """The ScaledObject's query, as rendered for AKS, on a migrated PostgreSQL database."""
    [trigger] = find(render("aks"), "ScaledObject", "genkeep-worker")["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    async with opened_services(settings, tmp_path) as services:
        job = await services.jobs.create("alice", {"title": "queue"}, AUDIT)
        ids = []
        for key in range(9):
            submission = Submission(
                "sleep", {"steps": 1}, f"k{key}", max_attempts=3, timeout=timedelta(minutes=5)
            )
            task, _ = await services.tasks.submit(job, submission, AUDIT)
            ids.append(task.id)
        claimed = await services.tasks.claim("worker-a", lease_s=30, limit=2)  # 2 running
        running = {task.id for task, _ in claimed}
        waiting = [task_id for task_id in ids if task_id not in running]
        now = utcnow()
        changes: list[dict[str, Any]] = [
            {"run_after": now + timedelta(minutes=5)},  # a retry waiting out its backoff
            {"status": "completed", "finished_at": now},
            {"status": "failed", "finished_at": now},
            {"status": "cancelled", "finished_at": now},
        ]
        async with services.database.transaction() as session:
            for task_id, values in zip(waiting, changes, strict=False):
                await session.execute(update(Task).where(Task.id == task_id).values(**values))
        # Left: 2 running + 3 queued and due; not counted: one not due, three finished.
        assert await keda_count(db_url, query) == 5
        await services.tasks.claim("worker-b", lease_s=30, limit=10)  # the 3 due ones
        assert await keda_count(db_url, query) == 5
        async with services.database.transaction() as session:
            await session.execute(
                update(Task).where(Task.status == "running").values(status="completed")
            )
        assert await keda_count(db_url, query) == 0
        # A running run's batches left to do (claimable or in flight) count twice each: a
        # pod extracts two batches at once where it runs four tasks.
        run = await services.runs.create("alice", RUN_MANIFEST)
        lease = await services.runs.acquire(run.id, "executor", 30)
        assert lease is not None
        await services.runs.open_batches(lease, 6)
        async with services.database.transaction() as session:
            for index, status in ((0, "done"), (1, "done"), (2, "running")):
                await session.execute(
                    update(RunBatch)
                    .where(RunBatch.run_id == run.id, RunBatch.batch_index == index)
                    .values(status=status)
                )
        assert await keda_count(db_url, query) == 2 * 4
        await services.runs.request_cancel("alice", run.id)  # no more claims: not counted
        assert await keda_count(db_url, query) == 0


RUN_MANIFEST = {
    "input_name": "in.txt",
    "input_sha256": "0" * 64,
    "input_blob_key": "owners/alice/inputs/none",
    "input_chars": 0,
    "ontology_hash": "0" * 64,
    "extractor_name": "genkeep-builtin",
    "extractor_version": "1",
}


async def keda_count(db_url: str, query: str) -> int:
    """Run the query the way KEDA does: a plain connection, one scalar back."""
    connection = await asyncpg.connect(dsn(db_url))
    try:
        return int(await connection.fetchval(query))
    finally:
        await connection.close()
