"""The three queues under test behind one small interface, and throwaway PostgreSQL databases.

Each system installs its schema into its own database, enqueues one no-op task per call
through its documented client API, runs workers through its own CLI, and counts completed
tasks with one SQL query.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Queries  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy.engine import make_url

from benchmarks.databases import admin_url, migrate
from benchmarks.task_peers import DSN_ENV, NOOP, procrastinate_app_for
from genkeep.config import load_settings
from genkeep.db.jobs import Audit
from genkeep.db.tasks import Submission
from genkeep.services import close_services, open_services

ROOT = Path(__file__).resolve().parent.parent
Enqueue = Callable[[int], Awaitable[None]]


def dsn_for(database: str) -> str:
    """A plain ``postgresql://`` URL that asyncpg, psycopg and genkeep all accept."""
    url = make_url(admin_url()).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(dsn_for(make_url(admin_url()).database or "postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@asynccontextmanager
async def scratch_database(label: str) -> AsyncIterator[str]:
    """An empty ``genkeep_taskbench_*`` database, dropped on exit even after a failure."""
    name = f"genkeep_taskbench_{label}_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield dsn_for(name)
    finally:
        await asyncio.shield(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class QueueSystem(ABC):
    """One queue: schema, producer, worker command and a completed-task count."""

    name: str
    completed_sql: str

    @abstractmethod
    async def install(self, dsn: str, workdir: Path) -> None: ...

    @abstractmethod
    def producer(
        self, dsn: str, workdir: Path, connections: int
    ) -> AbstractAsyncContextManager[Enqueue]: ...

    @abstractmethod
    def worker_command(self, concurrency: int, poll_s: float) -> list[str]: ...

    def worker_env(self, dsn: str, workdir: Path, poll_s: float) -> dict[str, str]:
        return {
            DSN_ENV: dsn,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
        }

    @abstractmethod
    def settings(self, concurrency: int, poll_s: float) -> dict[str, Any]:
        """The worker knobs this run used, for the report."""


class Genkeep(QueueSystem):
    name = "genkeep"
    completed_sql = "SELECT count(*) FROM tasks WHERE status = 'completed'"

    async def install(self, dsn: str, workdir: Path) -> None:
        await asyncio.to_thread(migrate, dsn, workdir / "var")

    @asynccontextmanager
    async def producer(self, dsn: str, workdir: Path, connections: int) -> AsyncIterator[Enqueue]:
        settings = load_settings(
            database_url=dsn, data_dir=workdir / "var", db_pool_size=connections
        )
        services = await open_services(settings)
        try:
            audit = Audit(actor="bench", trace_id=secrets.token_hex(16))
            job = await services.jobs.create("bench", {"title": "task bench"}, audit)

            async def enqueue(number: int) -> None:
                submission = Submission(NOOP, {}, f"bench-{number}", 3, timedelta(hours=1))
                await services.tasks.submit(job, submission, audit)

            yield enqueue
        finally:
            await close_services(services)

    def worker_command(self, concurrency: int, poll_s: float) -> list[str]:
        return [
            sys.executable,
            "-m",
            "genkeep.cli.root",
            "worker",
            "--concurrency",
            str(concurrency),
        ]

    def worker_env(self, dsn: str, workdir: Path, poll_s: float) -> dict[str, str]:
        return {
            **super().worker_env(dsn, workdir, poll_s),
            "GENKEEP_DATABASE_URL": dsn,
            "GENKEEP_DATA_DIR": str(workdir / "var"),
            "GENKEEP_TASK_MODULES": json.dumps(["tests.support.handlers"]),
            "GENKEEP_TASK_POLL_S": str(poll_s),
        }

    def settings(self, concurrency: int, poll_s: float) -> dict[str, Any]:
        return {
            "cli": "genkeep worker --concurrency N",
            "concurrency": concurrency,
            "poll_s (GENKEEP_TASK_POLL_S, default 1.0)": poll_s,
            "listen_notify": True,
            "claim_batch": f"up to free slots (≤{concurrency}), with the completions",
            "submit": "one call per task; concurrent calls share a statement (group commit)",
        }


class Procrastinate(QueueSystem):
    name = "procrastinate"
    completed_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"

    async def install(self, dsn: str, workdir: Path) -> None:
        async with procrastinate_app_for(dsn).open_async() as app:
            await app.schema_manager.apply_schema_async()

    @asynccontextmanager
    async def producer(self, dsn: str, workdir: Path, connections: int) -> AsyncIterator[Enqueue]:
        async with procrastinate_app_for(dsn, connections).open_async() as app:
            deferrer = app.configure_task(NOOP)

            async def enqueue(number: int) -> None:
                await deferrer.defer_async()

            yield enqueue

    def worker_command(self, concurrency: int, poll_s: float) -> list[str]:
        return [
            *(sys.executable, "-m", "procrastinate"),
            *("--app", "benchmarks.task_peers.procrastinate_app", "worker"),
            *("--concurrency", str(concurrency)),
            *("--fetch-job-polling-interval", str(poll_s)),
        ]

    def settings(self, concurrency: int, poll_s: float) -> dict[str, Any]:
        return {
            "cli": "procrastinate worker --concurrency N --fetch-job-polling-interval P",
            "concurrency (default 1)": concurrency,
            "fetch_job_polling_interval (default 5.0)": poll_s,
            "listen_notify (default on)": True,
            "claim_batch": "1 job per fetch",
        }


class Pgqueuer(QueueSystem):
    name = "pgqueuer"
    completed_sql = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"

    def __init__(self, batch_size: int = 2) -> None:
        self.batch_size = batch_size

    def _limits(self, concurrency: int) -> tuple[int, int]:
        """(batch size, task cap): PgQueuer requires the cap to be ≥ 2 × the batch size."""
        batch = max(1, min(self.batch_size, concurrency // 2))
        return batch, max(concurrency, 2 * batch)

    async def install(self, dsn: str, workdir: Path) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await Queries(AsyncpgDriver(connection)).install()
        finally:
            await connection.close()

    @asynccontextmanager
    async def producer(self, dsn: str, workdir: Path, connections: int) -> AsyncIterator[Enqueue]:
        async with asyncpg.create_pool(dsn, min_size=connections, max_size=connections) as pool:
            queries = Queries(AsyncpgPoolDriver(pool))

            async def enqueue(number: int) -> None:
                await queries.enqueue(NOOP, None)

            yield enqueue

    def worker_command(self, concurrency: int, poll_s: float) -> list[str]:
        batch, cap = self._limits(concurrency)
        return [
            *(sys.executable, "-m", "benchmarks.task_peers"),
            *("--dequeue-timeout", str(poll_s)),
            *("--batch-size", str(batch)),
            *("--max-concurrent-tasks", str(cap)),
        ]

    def settings(self, concurrency: int, poll_s: float) -> dict[str, Any]:
        batch, cap = self._limits(concurrency)
        return {
            "cli": "pgqueuer.run(factory, …) as `pgq run` (uvloop) — see task_peers.py",
            "max_concurrent_tasks (default unlimited)": cap,
            "dequeue_timeout (default 30.0)": poll_s,
            "batch_size (default 10)": batch,
            "listen_notify": True,
            "completion_log_buffer": "flushed every batch_size jobs or 0.1 s",
        }


SYSTEMS: dict[str, Callable[[], QueueSystem]] = {
    "genkeep": Genkeep,
    "procrastinate": Procrastinate,
    "pgqueuer": Pgqueuer,
}
