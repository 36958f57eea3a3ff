"""What ``genkeep_tasks{status}`` costs a scrape of /metrics: ``TaskStore.count_by_status``
over N tasks, on a throwaway database per backend.

    .venv/bin/python -m benchmarks.queue_depth [--sizes 1000,10000,100000] [--repeats 7]
        [--backends sqlite,postgresql] [--json OUT]

The tasks are written in bulk (one in five of each status); each size is counted
``repeats`` times after one untimed count, and the median and max are reported. The counts
are checked against what was written, by this script's own arithmetic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from benchmarks.databases import throwaway_database
from genkeep.db.database import Database
from genkeep.db.models import Job, Task
from genkeep.db.tasks import TaskStore
from genkeep.db.types import utcnow

ROOT = Path(__file__).resolve().parents[1]
STATUSES = ("queued", "running", "completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Row:
    backend: str
    tasks: int
    median_ms: float
    max_ms: float


async def fill(database: Database, job_id: str, start: int, stop: int) -> None:
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "owner_id": "bench",
            "job_id": job_id,
            "kind": "noop",
            "idempotency_key": f"k{i}",
            "request_hash": "h",
            "payload": {},
            "status": STATUSES[i % len(STATUSES)],
            "progress": 0.0,
            "attempts": 0,
            "max_attempts": 3,
            "run_after": now,
            "cancel_requested": False,
            "trace_id": "0" * 32,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(start, stop)
    ]
    for offset in range(0, len(rows), 5000):
        async with database.transaction() as session:
            await session.execute(insert(Task), rows[offset : offset + 5000])


async def measure(backend: str, url: str, sizes: list[int], repeats: int) -> list[Row]:
    database = Database(url)
    store = TaskStore(database, None)  # type: ignore[arg-type]  # counting needs no artifacts
    job_id = str(uuid.uuid4())
    now = utcnow()
    async with database.transaction() as session:
        await session.execute(
            insert(Job),
            [
                {
                    "id": job_id,
                    "owner_id": "bench",
                    "title": "bench",
                    "sections": [],
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
    rows, written = [], 0
    try:
        for size in sizes:
            await fill(database, job_id, written, size)
            written = size
            expected = {s: len(range(i, size, len(STATUSES))) for i, s in enumerate(STATUSES)}
            assert await store.count_by_status() == expected, "wrong counts"
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                await store.count_by_status()
                seconds.append(time.perf_counter() - started)
            ms = [s * 1000 for s in seconds]
            rows.append(Row(backend, size, statistics.median(ms), max(ms)))
    finally:
        await database.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/queue_depth.json")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results: list[Row] = []
    for backend in args.backends.split(","):
        with (
            tempfile.TemporaryDirectory() as workdir,
            throwaway_database(backend, Path(workdir)) as url,
        ):
            results += asyncio.run(measure(backend, url, sizes, args.repeats))
    table = Table(title="genkeep_tasks: count_by_status per scrape")
    for column in ("backend", "tasks", "median ms", "max ms"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for row in results:
        table.add_row(row.backend, f"{row.tasks:,}", f"{row.median_ms:.2f}", f"{row.max_ms:.2f}")
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
