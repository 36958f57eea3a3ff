"""The retention soak: N tasks through the queue with every retention period set to a
minute keep the queue tables' row counts bounded; nothing unfinished is touched.

    .venv/bin/python -m benchmarks.retention_soak [--tasks 200000] [--backend postgresql]
        [--retention-s 60] [--sweep-s 10] [--every-s 10] [--rate 1000] [--json OUT]

One process on a throwaway database: submitters enqueue no-op tasks through
``TaskStore.submit`` (the API's path), two in-process workers run them, and the workers'
periodic sweep (``sweep_if_due``: one sweeper per period, recorded in the database) applies
retention, the opt-in ``task.*`` event rule included (``retention_task_events_s``). The
rows of ``tasks``, ``task_changes`` and ``job_events`` are counted in the database every
``--every-s``. Sentinels the script writes itself, a day old by their stamps and never
finished (queued for tomorrow, or running under a day-long lease), must all be there at
the end with their status, and every submitted task must have completed: the completions
the database confirmed (the RETURNING of the workers' completion statements) are counted,
so a task deleted before it finished would be missing from them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select, update

from benchmarks.databases import throwaway_database
from genkeep.config import Settings
from genkeep.db.jobs import Audit
from genkeep.db.models import JobEvent, Task, TaskChange
from genkeep.db.tasks import Submission
from genkeep.db.types import utcnow
from genkeep.ops.sweep import sweep_if_due
from genkeep.services import Services, close_services, open_services
from genkeep.worker.runner import Worker

ROOT = Path(__file__).resolve().parents[1]
AUDIT = Audit(actor="soak", trace_id="0af7651916cd43dd8448eb211c80319c")
SENTINELS = 50


@dataclass(frozen=True, slots=True)
class Sample:
    elapsed_s: float
    submitted: int
    tasks: int
    task_changes: int
    job_events: int
    swept_tasks: int


async def counts(services: Services) -> tuple[int, int, int]:
    async with services.database.reading() as session:
        found = []
        for table in (Task, TaskChange, JobEvent):
            query = select(func.count()).select_from(table)
            found.append(int((await session.execute(query)).scalar_one()))
    return found[0], found[1], found[2]


async def plant_sentinels(services: Services, job: Any) -> list[str]:
    """Unfinished tasks a day old: queued for tomorrow, and running under a day-long lease."""
    day_ago, tomorrow = utcnow() - timedelta(days=1), utcnow() + timedelta(days=1)
    ids = [str(uuid.uuid4()) for _ in range(SENTINELS)]
    rows = [
        {
            "id": task_id,
            "owner_id": job.owner_id,
            "job_id": job.id,
            "kind": "noop",
            "idempotency_key": f"sentinel-{task_id}",
            "request_hash": "-",
            "payload": {},
            "status": "queued",
            "progress": 0.0,
            "attempts": 0,
            "max_attempts": 3,
            "run_after": tomorrow,
            "trace_id": AUDIT.trace_id,
            "created_at": day_ago,
            "updated_at": day_ago,
            "cancel_requested": False,
        }
        for task_id in ids
    ]
    async with services.database.transaction() as session:
        await session.execute(insert(Task), rows)
        # Half of them running under a lease no reaper takes, started a day ago.
        await session.execute(
            update(Task)
            .where(Task.id.in_(ids[: SENTINELS // 2]))
            .values(
                status="running",
                lease_token="held",
                worker_id="sentinel",
                attempts=1,
                lease_expires_at=tomorrow,
                started_at=day_ago,
            )
        )
    return ids


async def soak(url: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    settings = Settings(
        database_url=url,
        data_dir=Path(tempfile.mkdtemp(prefix="genkeep-soak-")),
        retention_changes_s=args.retention_s,
        retention_tasks_s=args.retention_s,
        retention_task_events_s=args.retention_s,
        sweep_interval_s=args.sweep_s,
        worker_concurrency=64,
        # The no-op kind of the tests' extension (tests/support/handlers.py).
        task_modules=["tests.support.handlers"],
        db_pool_size=20,
        _env_file=None,
    )
    services = await open_services(settings)
    swept = {"tasks": 0, "sweeps": 0}

    async def housekeeping() -> object:
        report = await sweep_if_due(services)
        if report is not None:
            swept["tasks"] += report.retention.get("tasks", 0)
            swept["sweeps"] += 1
        return report

    confirmed = {"completions": 0}
    complete_many, complete_and_claim = (
        services.tasks.complete_many,
        services.tasks.complete_and_claim,
    )

    async def counted_many(completions: Any) -> list[bool]:
        done = await complete_many(completions)
        confirmed["completions"] += sum(done)
        return done

    async def counted_and_claim(completions: Any, *rest: Any) -> Any:
        done, claimed = await complete_and_claim(completions, *rest)
        confirmed["completions"] += sum(done)
        return done, claimed

    services.tasks.complete_many = counted_many  # type: ignore[method-assign]
    services.tasks.complete_and_claim = counted_and_claim  # type: ignore[method-assign,assignment]
    try:
        job = await services.jobs.create("soak", {"title": "soak"}, AUDIT)
        sentinels = await plant_sentinels(services, job)
        workers = [Worker(services, housekeeping=housekeeping) for _ in range(2)]
        running = [asyncio.create_task(w.run()) for w in workers]
        submitted = 0
        samples: list[Sample] = []
        started = time.monotonic()

        async def submit_all() -> None:
            nonlocal submitted
            next_key = 0

            async def one() -> None:
                nonlocal next_key, submitted
                while next_key < args.tasks:
                    key, next_key = next_key, next_key + 1
                    if args.rate:
                        # Paced: a soak longer than the retention period shows its plateau.
                        await asyncio.sleep(started + key / args.rate - time.monotonic())
                    submission = Submission("noop", {}, f"t{key}", 3, timedelta(hours=1))
                    await services.tasks.submit(job, submission, AUDIT)
                    submitted += 1

            await asyncio.gather(*(one() for _ in range(64)))

        async def sample() -> None:
            tasks, changes, events = await counts(services)
            row = Sample(
                round(time.monotonic() - started, 1),
                submitted,
                tasks,
                changes,
                events,
                swept["tasks"],
            )
            samples.append(row)
            console.print(
                f"{row.elapsed_s:7.1f}s submitted {row.submitted:7d}  tasks {row.tasks:7d}  "
                f"task_changes {row.task_changes:7d}  job_events {row.job_events:7d}  "
                f"swept tasks {row.swept_tasks:7d}"
            )

        submitter = asyncio.create_task(submit_all())
        while not submitter.done():
            await asyncio.wait([submitter], timeout=args.every_s)
            await sample()
        await submitter
        # Drained, then a period and a sweep more: history older than the period goes.
        deadline = time.monotonic() + args.retention_s + 3 * args.sweep_s + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(args.every_s)
            await sample()
            if samples[-1].tasks <= SENTINELS and samples[-1].task_changes <= 2 * SENTINELS:
                break
        for worker in workers:
            worker.stop()
        await asyncio.gather(*running)

        async with services.database.reading() as session:
            kept = dict(
                (
                    await session.execute(
                        select(Task.id, Task.status).where(Task.id.in_(sentinels))
                    )
                ).all()
            )
            unfinished = (
                await session.execute(
                    select(func.count())
                    .select_from(Task)
                    .where(Task.status != "completed", Task.id.not_in(sentinels))
                )
            ).scalar_one()
        sentinels_ok = (
            len(kept) == SENTINELS and sorted(kept.values()).count("running") == SENTINELS // 2
        )
        all_completed = confirmed["completions"] == args.tasks and unfinished == 0
        during = [s for s in samples if s.submitted < args.tasks] or samples
        return {
            "backend": "postgresql" if url.startswith("postgresql") else "sqlite",
            "tasks": args.tasks,
            "retention_s": args.retention_s,
            "sweep_s": args.sweep_s,
            "seconds": round(time.monotonic() - started, 1),
            "sweeps": swept["sweeps"],
            "max_tasks": max(s.tasks for s in samples),
            "max_task_changes": max(s.task_changes for s in samples),
            "max_job_events": max(s.job_events for s in samples),
            "rate_per_s": round(during[-1].submitted / max(during[-1].elapsed_s, 1e-6)),
            "final": asdict(samples[-1]),
            "sentinels_untouched": sentinels_ok,
            "completions_confirmed": confirmed["completions"],
            "every_task_completed": all_completed,
            "samples": [asdict(s) for s in samples],
        }
    finally:
        await close_services(services)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--backend", default="postgresql", choices=("sqlite", "postgresql"))
    parser.add_argument("--retention-s", type=float, default=60.0)
    parser.add_argument("--sweep-s", type=float, default=10.0)
    parser.add_argument("--every-s", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="tasks submitted per second (0: at once)"
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks/results/retention_soak.json"
    )
    args = parser.parse_args(argv)
    console = Console()
    with (
        tempfile.TemporaryDirectory() as workdir,
        throwaway_database(args.backend, Path(workdir)) as url,
    ):
        result = asyncio.run(soak(url, args, console))
    table = Table(
        "backend",
        "tasks",
        "s",
        "tasks/s",
        "sweeps",
        "max tasks",
        "max changes",
        "max events",
        "sentinels kept",
        "all completed",
    )
    table.add_row(
        result["backend"],
        str(result["tasks"]),
        str(result["seconds"]),
        str(result["rate_per_s"]),
        str(result["sweeps"]),
        str(result["max_tasks"]),
        str(result["max_task_changes"]),
        str(result["max_job_events"]),
        str(result["sentinels_untouched"]),
        str(result["every_task_completed"]),
    )
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.json}")
    return 0 if result["sentinels_untouched"] and result["every_task_completed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
