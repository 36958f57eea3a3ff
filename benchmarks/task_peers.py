"""The peer queues' no-op apps, imported by their workers and by the benchmark's producer.

    python -m procrastinate --app benchmarks.task_peers.procrastinate_app worker ...
    python -m benchmarks.task_peers --dequeue-timeout 1 --batch-size 2 --max-concurrent-tasks 4

The second is ``pgq run benchmarks.task_peers:pgqueuer_factory …`` through PgQueuer's own
``pgqueuer.run`` and event-loop runner (uvloop), because ``pgq run`` 1.6.0 fails at start-up
under typer 0.29 (its ``--log-level`` reaches the logger as a str).

Worker processes read the database from ``TASK_BENCH_DSN`` (set by benchmarks/task_bench.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import pgqueuer  # type: ignore[import-not-found,unused-ignore]
import procrastinate  # type: ignore[import-not-found,unused-ignore]
from pgqueuer import AsyncpgDriver, PgQueuer  # type: ignore[import-not-found,unused-ignore]
from pgqueuer.adapters.cli.cli import asyncio_run  # type: ignore[import-not-found,unused-ignore]
from pgqueuer.models import Job  # type: ignore[import-not-found,unused-ignore]

DSN_ENV = "TASK_BENCH_DSN"
NOOP = "noop"


async def _procrastinate_noop() -> None:
    return None


def procrastinate_app_for(conninfo: str, pool_size: int | None = None) -> procrastinate.App:
    """A Procrastinate app with the ``noop`` task; its psycopg pool's defaults unless sized."""
    pool_args: dict[str, Any] = {}
    if pool_size is not None:
        pool_args = {"min_size": pool_size, "max_size": pool_size}
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo, **pool_args)
    )
    app.task(name=NOOP)(_procrastinate_noop)
    return app


# The worker CLI loads this; its connector does not connect until the app is opened.
procrastinate_app = procrastinate_app_for(os.environ.get(DSN_ENV, ""))


async def _pgqueuer_noop(job: Job) -> None:
    return None


@asynccontextmanager
async def pgqueuer_factory() -> AsyncIterator[PgQueuer]:
    """PgQueuer's documented worker factory: one asyncpg connection, one ``noop`` entrypoint."""
    connection = await asyncpg.connect(os.environ[DSN_ENV])
    try:
        pgq = PgQueuer(AsyncpgDriver(connection))
        pgq.entrypoint(NOOP)(_pgqueuer_noop)
        yield pgq
    finally:
        await connection.close()


def run_pgqueuer_worker(argv: list[str] | None = None) -> None:
    """What ``pgq run`` does with these options: the supervisor on PgQueuer's event loop."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dequeue-timeout", type=float, default=30.0)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-concurrent-tasks", type=int, default=None)
    args = parser.parse_args(argv)
    asyncio_run(
        pgqueuer.run(
            pgqueuer_factory,
            dequeue_timeout=timedelta(seconds=args.dequeue_timeout),
            batch_size=args.batch_size,
            max_concurrent_tasks=args.max_concurrent_tasks,
        )
    )


if __name__ == "__main__":
    run_pgqueuer_worker()
