"""The durable overhead of one batch: ``RunStore.save_batch``, sequential, on a throwaway database.

Each call commits a realistic encoded batch (about 50 kB of JSON), its entity keys (most
already in the run's registry after the first ``VARIANTS`` batches, as in a real run) and the
run's checkpoint. For scale, the same loop also times an empty transaction (``SELECT 1``
through the same session factory): the floor any one-transaction checkpoint pays.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks.databases import throwaway_database
from benchmarks.extract_data import OWNER, VARIANTS, BatchTemplate, run_manifest
from genkeep.db.database import Database
from genkeep.db.runs import RunStore


@dataclass(frozen=True, slots=True)
class Latencies:
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latencies:
        ms = sorted(s * 1000 for s in seconds)
        return cls(
            count=len(ms),
            mean_ms=statistics.fmean(ms),
            p50_ms=percentile(ms, 0.50),
            p90_ms=percentile(ms, 0.90),
            p99_ms=percentile(ms, 0.99),
            max_ms=ms[-1],
        )


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    backend: str
    batch_bytes: int
    entity_keys: int
    save_batch: Latencies
    # This process's CPU per save_batch: SQLAlchemy, driver, hashing (and SQLite's own thread).
    client_cpu_ms: float
    empty_transaction: Latencies
    batches_done: int
    entities_found: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def measure_checkpoints(
    backend: str, template: BatchTemplate, batches: int, warmup: int
) -> CheckpointResult:
    with (
        tempfile.TemporaryDirectory(prefix="genkeep-bench-") as folder,
        throwaway_database(backend, Path(folder)) as url,
    ):
        return asyncio.run(_measure(url, backend, template, batches, warmup))


async def _measure(
    url: str, backend: str, template: BatchTemplate, batches: int, warmup: int
) -> CheckpointResult:
    payloads = [(template.encoded(i), template.entity_keys(i)) for i in range(VARIANTS)]
    database = Database(url)
    runs = RunStore(database)
    try:
        run = await runs.create(OWNER, run_manifest(batches * template.span))
        lease = await runs.acquire(run.id, "bench", lease_s=3600)
        assert lease is not None
        timings: list[float] = []
        cpu = 0.0
        for index in range(warmup + batches):
            result, keys = payloads[index % VARIANTS]
            cpu_start, started = time.process_time(), time.perf_counter()
            if not (await runs.save_batch(lease, index, result, keys)).saved:
                raise RuntimeError(f"batch {index} was not saved")
            if index >= warmup:
                timings.append(time.perf_counter() - started)
                cpu += time.process_time() - cpu_start
        empty = [await _empty_transaction(database) for _ in range(warmup + batches)][warmup:]
        stored = await runs.require(OWNER, run.id)
    finally:
        await database.dispose()
    return CheckpointResult(
        backend=backend,
        batch_bytes=round(statistics.mean(len(p[0].encode()) for p in payloads)),
        entity_keys=round(statistics.mean(len(p[1]) for p in payloads)),
        save_batch=Latencies.of(timings),
        client_cpu_ms=cpu / batches * 1000,
        empty_transaction=Latencies.of(empty),
        batches_done=stored.batches_done,
        entities_found=stored.entities_found,
    )


async def _empty_transaction(database: Database) -> float:
    started = time.perf_counter()
    async with database.transaction() as session:
        await session.execute(text("SELECT 1"))
    return time.perf_counter() - started
