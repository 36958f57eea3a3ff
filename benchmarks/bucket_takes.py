"""Takes of one hot rate bucket from concurrent loops in one process: takes a second and the
process's CPU a take (``RateBuckets.take``, as a key's hits take).

    PYTHONPATH=src:. python -m benchmarks.bucket_takes [--loops 8] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.databases import throwaway_database
from genkeep.db.database import Database
from genkeep.db.rate_buckets import BucketRates, RateBuckets


async def takes(url: str, loops: int, seconds: float) -> tuple[float, float]:
    """(takes a second, ms of CPU a take) of ``loops`` loops taking for ``seconds``."""
    database = Database(url)
    buckets = RateBuckets(database)
    rates = BucketRates(rpm=1e8, tpm=None, burst_s=0.4)  # never refuses: the path a hit takes
    await buckets.take("rate:key:bench", rates)
    done = 0
    stop = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await buckets.take("rate:key:bench", rates)
            done += 1
            await asyncio.sleep(0)

    cpu, started = time.process_time(), time.monotonic()
    await asyncio.gather(*(loop() for _ in range(loops)))
    cpu, elapsed = time.process_time() - cpu, time.monotonic() - started
    await database.dispose()
    return done / elapsed, 1e3 * cpu / max(done, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="postgresql", choices=("sqlite", "postgresql"))
    parser.add_argument("--loops", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, throwaway_database(args.backend, Path(work)) as url:
        rate, cpu_ms = asyncio.run(takes(url, args.loops, args.seconds))
    print(f"{rate:.0f} takes/s, {cpu_ms:.3f} ms CPU a take")


if __name__ == "__main__":
    main()
