"""Peak memory of the streaming merge as a run grows: one stored run, merged at several lengths.

Setup (not measured): one run per size on a throwaway SQLite database, its batches
bulk-inserted as ``save_batch`` would leave them (status done, checksum). One run per size,
not a prefix of the largest: ``iter_results`` reads whole pages past ``total``. Each merge
runs in a fresh child process (``benchmarks/extract_merge.py``), which reports its own peak
RSS (VmHWM).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert, update

from benchmarks.databases import throwaway_database
from benchmarks.extract_data import OWNER, VARIANTS, BatchTemplate, run_manifest
from genkeep.db.database import Database
from genkeep.db.models import Run, RunBatch
from genkeep.db.runs import RunStore, checksum
from genkeep.db.types import utcnow

ROOT = Path(__file__).resolve().parent.parent
INSERT_ROWS = 250  # rows per executemany: about 13 MB of results


@dataclass(frozen=True, slots=True)
class MergeRun:
    batches: int
    mode: str  # "merge" (write_outputs' merge loop) or "outputs" (write_outputs itself)
    seconds: float
    rss_before_mib: float  # the child after imports and connecting, before the merge
    peak_rss_mib: float
    mentions: int
    entities: int
    relations: int
    output_bytes: dict[str, int]

    @property
    def growth_mib(self) -> float:
        return self.peak_rss_mib - self.rss_before_mib


@dataclass(frozen=True, slots=True)
class MemoryResult:
    setup_seconds: float
    database_mib: float
    batch_bytes: int
    distinct_entities_max: int
    runs: list[MergeRun]

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        for run, row in zip(self.runs, found["runs"], strict=True):
            row["growth_mib"] = run.growth_mib
        return found

    def ratio(self, mode: str, small: int, large: int) -> float:
        peaks = {run.batches: run.peak_rss_mib for run in self.runs if run.mode == mode}
        return peaks[large] / peaks[small]


def measure_memory(
    template: BatchTemplate,
    sizes: tuple[int, ...],
    modes: tuple[str, ...],
    page_size: int | None = None,
) -> MemoryResult:
    with (
        tempfile.TemporaryDirectory(prefix="genkeep-bench-") as folder,
        throwaway_database("sqlite", Path(folder)) as url,
    ):
        started = time.perf_counter()
        run_ids = {size: asyncio.run(_store_batches(url, template, size)) for size in sizes}
        setup = time.perf_counter() - started
        database = Path(folder) / "bench.db"
        runs = [
            _merge_in_child(url, run_ids[size], size, mode, page_size)
            for mode in modes
            for size in sizes
        ]
        return MemoryResult(
            setup_seconds=setup,
            database_mib=database.stat().st_size / 2**20,
            batch_bytes=len(template.encoded(0).encode()),
            distinct_entities_max=len(template.entity_keys(0)) * VARIANTS,
            runs=runs,
        )


async def _store_batches(url: str, template: BatchTemplate, count: int) -> str:
    database = Database(url)
    runs = RunStore(database)
    table: Table = RunBatch.__table__  # type: ignore[assignment]
    try:
        run = await runs.create(OWNER, run_manifest(count * template.span))
        for first in range(0, count, INSERT_ROWS):
            rows = []
            for index in range(first, min(first + INSERT_ROWS, count)):
                result = template.encoded(index)
                rows.append(
                    {
                        "run_id": run.id,
                        "batch_index": index,
                        "status": "done",
                        "result": result,
                        "checksum": checksum(result),
                        "error": None,
                        "attempts": 1,
                        "updated_at": utcnow(),
                    }
                )
            async with database.transaction() as session:
                await session.execute(insert(table), rows)
        async with database.transaction() as session:
            await session.execute(
                update(Run)
                .where(Run.id == run.id)
                .values(status="completed", total_batches=count, batches_done=count)
            )
    finally:
        await database.dispose()
    return run.id


def _merge_in_child(
    url: str, run_id: str, batches: int, mode: str, page_size: int | None
) -> MergeRun:
    command = [
        sys.executable,
        "-m",
        "benchmarks.extract_merge",
        *("--url", url, "--run-id", run_id, "--batches", str(batches), "--mode", mode),
    ]
    if page_size is not None:
        command += ["--page-size", str(page_size)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"merge of {batches} batches failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found["batches"] != batches:
        raise RuntimeError(f"merged {found['batches']} batches, expected {batches}")
    return MergeRun(
        batches=batches,
        mode=mode,
        seconds=found["seconds"],
        rss_before_mib=found["rss_before_kib"] / 1024,
        peak_rss_mib=found["peak_rss_kib"] / 1024,
        mentions=found["mentions"],
        entities=found["entities"],
        relations=found["relations"],
        output_bytes=found["bytes"],
    )
