"""Benchmark genkeep's PostgreSQL task queue against Procrastinate and PgQueuer on no-op tasks.

    .venv/bin/python benchmarks/task_bench.py [--tasks N] [--processes 1,4] [--concurrency C]
        [--poll-s P] [--producers K] [--systems genkeep,procrastinate,pgqueuer] [--rounds R]
        [--json OUT]

Defaults: N=1000, 1 and 4 worker processes, 4 tasks at once per process, 1 s polling fallback
(LISTEN/NOTIFY on for all three), K=16 producers; about 2.5 minutes on 2 cores.

For every system and worker-process count, on a fresh throwaway database (dropped at the end,
even on failure), with the same N, per-process concurrency and polling interval for all:

1. backlog enqueue: N no-op tasks through the system's client API, K concurrent callers (one
   task per call, one shared connection pool), no worker running.  → enqueue/s
2. drain: the worker processes start (each system's own CLI) and run the backlog; the rate
   is taken over the steady middle (10% → 90% completed) so process start-up is excluded.
3. live: with the workers idle and listening, N more tasks are enqueued the same way.
   live enqueue/s = N / (first call start → last call return);
   end-to-end tasks/s = N / (first call start → the N-th completion seen by a 20 ms count poll).

CPU per task (benchmark process during the backlog enqueue; all workers during the live phase)
is reported too: unlike rates, it barely moves when other work shares the machine.

Then 64 coroutines × 50 genkeep artifact-version allocations (one transaction each) must give
exactly the versions 1..3200.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import asyncpg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.allocations import AllocationResult, measure_allocations
from benchmarks.task_queues import ROOT, SYSTEMS, Enqueue, QueueSystem, scratch_database

POLL_EVERY_S = 0.02
STALL_S = 60.0
STOP_S = 30.0
console = Console(width=max(Console().width, 130))


@dataclass(frozen=True, slots=True)
class Options:
    tasks: int
    processes: tuple[int, ...]
    concurrency: int
    poll_s: float
    producers: int
    systems: tuple[str, ...]
    rounds: int
    allocation_tasks: int
    allocation_each: int
    json_path: Path


@dataclass
class RunResult:
    system: str
    processes: int
    tasks: int
    enqueue_per_s: float
    drain_per_s: float
    live_enqueue_per_s: float
    e2e_per_s: float
    e2e_s: float
    producer_cpu_ms: float
    worker_cpu_ms: float
    settings: dict[str, Any] = field(default_factory=dict)


# -- workers ------------------------------------------------------------------------------


def _log_file(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


class Workers:
    """``count`` worker processes of one system, stopped with SIGTERM like a deployment would."""

    def __init__(self, system: QueueSystem, count: int, workdir: Path) -> None:
        self.system = system
        self.count = count
        self.logs = [workdir / f"{system.name}-worker-{n}.log" for n in range(count)]
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self, dsn: str, workdir: Path, concurrency: int, poll_s: float) -> None:
        command = self.system.worker_command(concurrency, poll_s)
        env = {**os.environ, **self.system.worker_env(dsn, workdir, poll_s)}
        for path in self.logs:
            log = _log_file(path)
            try:
                self.processes.append(
                    await asyncio.create_subprocess_exec(
                        *command, cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
                    )
                )
            finally:
                log.close()

    def cpu_seconds(self) -> float:
        """User + system CPU the worker processes have used so far (Linux /proc)."""
        total = 0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def check_alive(self) -> None:
        for process, path in zip(self.processes, self.logs, strict=False):
            if process.returncode is not None:
                tail = path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{path.name} exited with {process.returncode}:\n{tail}")

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_S)
            except TimeoutError:
                process.kill()
                await process.wait()


# -- measuring ----------------------------------------------------------------------------


async def enqueue_all(enqueue: Enqueue, numbers: Iterable[int], producers: int) -> float:
    """Seconds from the first call's start to the last call's return, ``producers`` at once."""
    pending = iter(numbers)

    async def producer() -> None:
        for number in pending:
            await enqueue(number)

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(producers)))
    return time.perf_counter() - started


async def wait_completed(
    connection: asyncpg.Connection, sql: str, target: int, workers: Workers
) -> list[tuple[float, int]]:
    """(time, completed) samples every 20 ms until ``target`` tasks are completed."""
    samples: list[tuple[float, int]] = []
    last_progress = time.perf_counter()
    while True:
        count = int(await connection.fetchval(sql))
        now = time.perf_counter()
        if samples and count > samples[-1][1]:
            last_progress = now
        samples.append((now, count))
        if count >= target:
            return samples
        workers.check_alive()
        if now - last_progress > STALL_S:
            raise RuntimeError(f"{workers.system.name}: stuck at {count}/{target} completed")
        await asyncio.sleep(POLL_EVERY_S)


def steady_rate(samples: Sequence[tuple[float, int]], low: int, high: int) -> float:
    """Completions per second between the first samples at or past ``low`` and ``high``."""
    t_low, c_low = next((t, c) for t, c in samples if c >= low)
    t_high, c_high = next((t, c) for t, c in samples if c >= high)
    return (c_high - c_low) / (t_high - t_low) if t_high > t_low else float("nan")


async def run_one(system: QueueSystem, processes: int, options: Options, root: Path) -> RunResult:
    n = options.tasks
    workdir = root / f"{system.name}-{processes}"
    async with scratch_database(system.name) as dsn:
        await system.install(dsn, workdir)
        workers = Workers(system, processes, workdir)
        counter = await asyncpg.connect(dsn)
        try:
            async with system.producer(dsn, workdir, options.producers) as enqueue:
                producer_cpu = time.process_time()
                backlog_s = await enqueue_all(enqueue, range(n), options.producers)
                producer_cpu = time.process_time() - producer_cpu
                await workers.start(dsn, workdir, options.concurrency, options.poll_s)
                drained = await wait_completed(counter, system.completed_sql, n, workers)
                drain = steady_rate(drained, n // 10, n - n // 10)

                worker_cpu = workers.cpu_seconds()
                started = time.perf_counter()
                live = asyncio.create_task(enqueue_all(enqueue, range(n, 2 * n), options.producers))
                try:
                    done = await wait_completed(counter, system.completed_sql, 2 * n, workers)
                except BaseException:
                    live.cancel()
                    raise
                live_s = await live
                e2e_s = done[-1][0] - started
                worker_cpu = workers.cpu_seconds() - worker_cpu
        finally:
            await counter.close()
            await workers.stop()
    return RunResult(
        system=system.name,
        processes=processes,
        tasks=n,
        enqueue_per_s=n / backlog_s,
        drain_per_s=drain,
        live_enqueue_per_s=n / live_s,
        e2e_per_s=n / e2e_s,
        e2e_s=e2e_s,
        producer_cpu_ms=producer_cpu * 1000 / n,
        worker_cpu_ms=worker_cpu * 1000 / n,
        settings=system.settings(options.concurrency, options.poll_s),
    )


def median_run(runs: list[RunResult]) -> RunResult:
    """The per-metric median of repeated runs of one cell."""
    first = runs[0]

    def med(name: str) -> float:
        return statistics.median(float(getattr(run, name)) for run in runs)

    return RunResult(
        system=first.system,
        processes=first.processes,
        tasks=first.tasks,
        enqueue_per_s=med("enqueue_per_s"),
        drain_per_s=med("drain_per_s"),
        live_enqueue_per_s=med("live_enqueue_per_s"),
        e2e_per_s=med("e2e_per_s"),
        e2e_s=med("e2e_s"),
        producer_cpu_ms=med("producer_cpu_ms"),
        worker_cpu_ms=med("worker_cpu_ms"),
        settings=first.settings,
    )


# -- environment and report ---------------------------------------------------------------


async def server_facts(dsn: str) -> dict[str, str]:
    connection = await asyncpg.connect(dsn)
    try:
        names = ("fsync", "synchronous_commit", "max_connections", "shared_buffers")
        rows = await connection.fetch(
            "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", list(names)
        )
        facts = {row["name"]: row["setting"] for row in rows}
        facts["version"] = str(await connection.fetchval("SHOW server_version"))
        return facts
    finally:
        await connection.close()


def package_versions() -> dict[str, str]:
    names = ("genkeep", "procrastinate", "pgqueuer", "asyncpg", "psycopg", "sqlalchemy")
    found: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def render(results: list[RunResult], allocation: AllocationResult | None) -> None:
    table = Table(
        title="No-op tasks per second (higher is better); CPU ms per task (lower is better)"
    )
    columns = (
        "system",
        "procs",
        "enqueue/s",
        "drain/s",
        "live enq/s",
        "end-to-end/s",
        "CPU ms/task enq | work",
    )
    for column in columns:
        table.add_column(column, justify="right" if column != "system" else "left")
    table.add_column("genkeep÷this enq/drain/e2e", justify="right")
    ours = {r.processes: r for r in results if r.system == "genkeep"}
    for result in sorted(results, key=lambda r: (r.processes, r.system != "genkeep", r.system)):
        mine = ours.get(result.processes)
        ratio = "—"
        if result.system != "genkeep" and mine is not None:
            ratio = " / ".join(
                f"{getattr(mine, name) / getattr(result, name):.2f}"
                for name in ("enqueue_per_s", "drain_per_s", "e2e_per_s")
            )
        table.add_row(
            result.system,
            str(result.processes),
            f"{result.enqueue_per_s:,.0f}",
            f"{result.drain_per_s:,.0f}",
            f"{result.live_enqueue_per_s:,.0f}",
            f"{result.e2e_per_s:,.0f}",
            f"{result.producer_cpu_ms:.2f} | {result.worker_cpu_ms:.2f}",
            ratio,
        )
    console.print(table)
    if allocation is not None:
        verdict = "OK" if allocation.distinct and allocation.contiguous else "FAILED"
        console.print(
            f"genkeep allocate_version: {allocation.tasks} coroutines × {allocation.per_task} "
            f"= {allocation.tasks * allocation.per_task} in {allocation.seconds:.2f}s → "
            f"{allocation.per_second:,.0f}/s; distinct={allocation.distinct} "
            f"contiguous={allocation.contiguous} ({allocation.first}..{allocation.last}) "
            f"[{verdict}]"
        )


async def bench(options: Options) -> dict[str, Any]:
    # SIGTERM/SIGINT cancel the run, so workers are stopped and databases dropped on the way out.
    this = asyncio.current_task()
    assert this is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, this.cancel)
    load_at_start = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="task-bench-"))
    console.print(f"[dim]logs in {root}[/]")
    async with scratch_database("facts") as dsn:
        facts = await server_facts(dsn)
    cells: dict[tuple[str, int], list[RunResult]] = {}
    for round_number in range(options.rounds):
        for processes in options.processes:
            for name in options.systems:
                system = SYSTEMS[name]()
                result = await run_one(system, processes, options, root / str(round_number))
                cells.setdefault((name, processes), []).append(result)
                console.print(
                    f"[dim]round {round_number + 1}: {name} × {processes}: "
                    f"enqueue {result.enqueue_per_s:,.0f}/s, drain {result.drain_per_s:,.0f}/s, "
                    f"live enqueue {result.live_enqueue_per_s:,.0f}/s, "
                    f"end-to-end {result.e2e_per_s:,.0f}/s[/]"
                )
    results = [median_run(runs) for runs in cells.values()]
    allocation = None
    if options.allocation_tasks > 0:
        async with scratch_database("alloc") as dsn:
            await SYSTEMS["genkeep"]().install(dsn, root / "alloc")
            allocation = await measure_allocations(
                dsn, options.allocation_tasks, options.allocation_each
            )
    render(results, allocation)
    return {
        "options": {**asdict(options), "json_path": str(options.json_path)},
        "definitions": {
            "enqueue_per_s": "N one-task enqueue calls, `producers` concurrent, no workers",
            "drain_per_s": "completions/s between 10% and 90% of a pre-filled backlog",
            "live_enqueue_per_s": "N enqueue calls while workers run",
            "e2e_per_s": "N / (first live enqueue start → N-th completion seen)",
            "producer_cpu_ms": "benchmark-process CPU per task during the backlog enqueue",
            "worker_cpu_ms": "CPU per task of all worker processes during the live phase",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_start": load_at_start,
            "loadavg_at_end": os.getloadavg(),
        },
        "postgresql": facts,
        "packages": package_versions(),
        "runs": [asdict(run) for runs in cells.values() for run in runs],
        "results": [asdict(result) for result in results],
        "allocation": asdict(allocation) if allocation is not None else None,
    }


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=1000, help="N tasks per phase")
    parser.add_argument("--processes", default="1,4", help="worker process counts")
    parser.add_argument("--concurrency", type=int, default=4, help="tasks at once per process")
    parser.add_argument("--poll-s", type=float, default=1.0, help="worker polling fallback")
    parser.add_argument("--producers", type=int, default=16, help="concurrent enqueue calls")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--rounds", type=int, default=1, help="repeat and take medians")
    parser.add_argument("--allocation-tasks", type=int, default=64, help="0 skips it")
    parser.add_argument("--allocation-each", type=int, default=50)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "task_bench.json"
    )
    args = parser.parse_args(argv)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    return Options(
        tasks=args.tasks,
        processes=tuple(int(p) for p in args.processes.split(",")),
        concurrency=args.concurrency,
        poll_s=args.poll_s,
        producers=args.producers,
        systems=systems,
        rounds=args.rounds,
        allocation_tasks=args.allocation_tasks,
        allocation_each=args.allocation_each,
        json_path=args.json,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        report = asyncio.run(bench(options))
    except asyncio.CancelledError:
        console.print("interrupted: workers stopped, benchmark databases dropped")
        return 130
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    options.json_path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"[dim]wrote {options.json_path}[/]")
    allocation = report["allocation"]
    ok = allocation is None or (allocation["distinct"] and allocation["contiguous"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
