"""Benchmark extraction runs: the per-batch checkpoint, extractor throughput, merge memory.

    .venv/bin/python benchmarks/extract_bench.py [--json OUT] [--parts 1,2,3,4] [--batches N]
        [--warmup W] [--backends sqlite,postgresql] [--text-mb M] [--repeats R]
        [--merge-sizes 100,1000,10000] [--merge-modes merge,outputs] [--page-size P]
        [--rss-mb 2,20]

1. Durable overhead per batch: ``RunStore.save_batch`` (the batch, its entity keys and the
   checkpoint in one transaction) with a realistic encoded batch (built-in extractor on 4
   default chunks of the sample text, ~50 kB), N=2,000 sequential batches after W=200 of
   warm-up, on SQLite (temp file, WAL) and on a throwaway PostgreSQL database.
   Goal: <= 2 ms per batch (mean) on PostgreSQL.
2. Throughput of chunking and of the built-in extractor on M=5 MB of shuffled sample text.
3. Peak RSS of a fresh child process merging runs of 100, 1,000 and 10,000 stored batches
   (SQLite), ``merge``: write_outputs' merge loop (iter_results -> Merger -> files),
   ``outputs``: write_outputs itself (plus validation and blob copies).
   Goal: peak(10,000) / peak(100) <= 1.2 for the merge.
4. Peak RSS of a whole ``genkeep extract`` (built-in extractor, SQLite, Turtle written), a
   fresh process per input of 2 and 20 MB of shuffled sample text (benchmarks/extract_rss.py).
   Goal: peak(20 MB) / peak(2 MB) <= 1.2: the input is streamed, never held whole.

About 3 minutes on 2 cores for parts 1-3 (2.5 with ``--merge-modes merge``), 2 to 3 more for
part 4. Results also go to benchmarks/results/extract_bench.json.

``--extractor ner [--ner-kb 25,100]`` measures the ner extractor instead (spaCy; one child
process per input size, ``benchmarks/extract_ner.py``), results in
benchmarks/results/extract_bench_ner.json. Goals: >= 1 MB/s per process, peak RSS flat.

``--fleet [--fleet-batches 400] [--fleet-sizes 1,2,4,8] [--latency-s 0.2]`` is a mode of its
own (benchmarks/extract_fleet.py): one run spread over N worker processes against a fake
model, its speedup and the sha256s of its documents; results in extract_fleet.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.extract_checkpoints import CheckpointResult, measure_checkpoints
from benchmarks.extract_data import CHUNKS_PER_BATCH, VARIANTS, batch_template, sample_index
from benchmarks.extract_memory import ROOT, MemoryResult, measure_memory
from benchmarks.extract_rss import ExtractRss, measure_rss
from benchmarks.extract_rss import as_dict as rss_dict
from benchmarks.extract_throughput import ThroughputResult, measure_throughput

BACKENDS = ("sqlite", "postgresql")
MODES = ("merge", "outputs")
GOAL_CHECKPOINT_MS = 2.0
GOAL_MEMORY_RATIO = 1.2
console = Console(width=max(Console().width, 130))


@dataclass(frozen=True, slots=True)
class Options:
    parts: tuple[int, ...]
    batches: int
    warmup: int
    backends: tuple[str, ...]
    text_mb: float
    repeats: int
    merge_sizes: tuple[int, ...]
    merge_modes: tuple[str, ...]
    page_size: int | None
    json_path: Path
    rss_mb: tuple[float, ...] = (2.0, 20.0)


def report_checkpoints(results: list[CheckpointResult]) -> None:
    table = Table(
        title="1. Durable overhead per batch: RunStore.save_batch (batch + entity keys + "
        f"checkpoint, one transaction); goal <= {GOAL_CHECKPOINT_MS:g} ms mean on PostgreSQL"
    )
    columns = ("backend", "batches", "batch kB", "keys", "mean ms", "p50 ms", "p90 ms")
    for column in (*columns, "p99 ms", "max ms", "client CPU ms", "empty txn p50 ms", "goal"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for result in results:
        latency = result.save_batch
        goal = ""
        if result.backend == "postgresql":
            met = latency.mean_ms <= GOAL_CHECKPOINT_MS
            goal = "ok" if met else "[red]missed[/]"
        table.add_row(
            result.backend,
            str(latency.count),
            f"{result.batch_bytes / 1000:.1f}",
            str(result.entity_keys),
            f"{latency.mean_ms:.2f}",
            f"{latency.p50_ms:.2f}",
            f"{latency.p90_ms:.2f}",
            f"{latency.p99_ms:.2f}",
            f"{latency.max_ms:.2f}",
            f"{result.client_cpu_ms:.2f}",
            f"{result.empty_transaction.p50_ms:.2f}",
            goal,
        )
    console.print(table)


def report_throughput(result: ThroughputResult) -> None:
    table = Table(
        title=f"2. Throughput on {result.text_bytes / 1e6:.1f} MB of shuffled sample text "
        f"(default chunking: {result.chunks} chunks, {result.batches} batches; "
        f"{result.mentions} mentions, {result.relations} relations)"
    )
    for column in ("stage", "MB/s", "median s", "passes s"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    stages = (
        ("chunking (chunk_text)", result.chunking),
        ("extraction (extract_now, every chunk)", result.extraction),
        ("batch work (extract + merge_chunk_results + encode_result)", result.batch_work),
    )
    for name, rate in stages:
        table.add_row(
            name,
            f"{rate.mb_per_s:.2f}",
            f"{rate.seconds:.2f}",
            " ".join(f"{s:.2f}" for s in rate.passes),
        )
    console.print(table)


def report_memory(result: MemoryResult, options: Options) -> None:
    page = "default page" if options.page_size is None else f"page_size={options.page_size}"
    table = Table(
        title=f"3. Merge peak RSS, fresh child per run (SQLite, {page}); "
        f"{result.distinct_entities_max} distinct entities at most; goal peak "
        f"{max(options.merge_sizes)}/{min(options.merge_sizes)} <= {GOAL_MEMORY_RATIO} (merge)"
    )
    columns = ("mode", "batches", "mentions", "jsonl MB", "seconds", "batches/s")
    for column in (*columns, "RSS before MiB", "peak RSS MiB", "growth MiB"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for run in result.runs:
        table.add_row(
            run.mode,
            str(run.batches),
            str(run.mentions),
            f"{run.output_bytes['jsonl'] / 1e6:.1f}",
            f"{run.seconds:.2f}",
            f"{run.batches / run.seconds:.0f}",
            f"{run.rss_before_mib:.1f}",
            f"{run.peak_rss_mib:.1f}",
            f"{run.growth_mib:.1f}",
        )
    console.print(table)
    small, large = min(options.merge_sizes), max(options.merge_sizes)
    for mode in options.merge_modes:
        ratio = result.ratio(mode, small, large)
        verdict = ""
        if mode == "merge":
            verdict = "  ok" if ratio <= GOAL_MEMORY_RATIO else "  [red]missed[/]"
        console.print(
            f"{mode}: peak RSS {large}/{small} batches = {ratio:.3f}{verdict}", highlight=False
        )


def report_rss(results: list[ExtractRss]) -> None:
    table = Table(
        title="4. Peak RSS of `genkeep extract`, fresh process per input (built-in extractor, "
        f"SQLite); goal peak largest/smallest <= {GOAL_MEMORY_RATIO}"
    )
    for column in ("input MB", "batches", "seconds", "peak RSS MiB"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r.input_bytes / 1e6:.1f}",
            str(r.batches),
            f"{r.seconds:.1f}",
            f"{r.peak_rss_mib:.1f}",
        )
    console.print(table)
    ratio = results[-1].peak_rss_mib / results[0].peak_rss_mib
    verdict = "ok" if ratio <= GOAL_MEMORY_RATIO else "[red]missed[/]"
    console.print(f"extract: peak RSS largest/smallest input = {ratio:.3f}  {verdict}")


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--parts", default="1,2,3,4", help="which measurements to run")
    parser.add_argument("--batches", type=int, default=2000, help="timed save_batch calls")
    parser.add_argument("--warmup", type=int, default=200, help="untimed save_batch calls first")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--text-mb", type=float, default=5.0, help="text for throughput, MB")
    parser.add_argument("--repeats", type=int, default=3, help="throughput passes (median)")
    parser.add_argument("--merge-sizes", default="100,1000,10000", help="batches per run")
    parser.add_argument("--merge-modes", default=",".join(MODES))
    parser.add_argument("--page-size", type=int, help="iter_results page in merge mode")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/extract_bench.json")
    parser.add_argument("--rss-mb", default="2,20", help="extract inputs for part 4, MB")
    parser.add_argument("--extractor", choices=("builtin", "ner"), default="builtin")
    parser.add_argument("--ner-kb", default="25,100", help="ner: input sizes, kB")
    args = parser.parse_args(argv)
    if args.extractor == "ner":
        sys.exit(ner_main([int(kb) * 1000 for kb in args.ner_kb.split(",")]))
    parts = tuple(sorted(int(part) for part in args.parts.split(",")))
    backends = tuple(args.backends.split(","))
    modes = tuple(args.merge_modes.split(","))
    if not set(parts) <= {1, 2, 3, 4}:
        parser.error("--parts: choose from 1, 2, 3, 4")
    if not set(backends) <= set(BACKENDS):
        parser.error(f"--backends: choose from {', '.join(BACKENDS)}")
    if not set(modes) <= set(MODES):
        parser.error(f"--merge-modes: choose from {', '.join(MODES)}")
    return Options(
        parts=parts,
        batches=args.batches,
        warmup=args.warmup,
        backends=backends,
        text_mb=args.text_mb,
        repeats=args.repeats,
        merge_sizes=tuple(sorted(int(size) for size in args.merge_sizes.split(","))),
        merge_modes=modes,
        page_size=args.page_size,
        json_path=args.json,
        rss_mb=tuple(sorted(float(size) for size in args.rss_mb.split(","))),
    )


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "chunks_per_batch": CHUNKS_PER_BATCH,
        "entity_variants": VARIANTS,
    }


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through the finally blocks that drop the throwaway databases.
    raise SystemExit(128 + signum)


def fleet_main(argv: list[str]) -> int:
    """The ``--fleet`` mode: nothing else runs (see benchmarks/extract_fleet.py)."""
    from benchmarks.extract_fleet import measure_fleet, report_fleet

    parser = argparse.ArgumentParser(description="one run over a fleet of worker processes")
    parser.add_argument("--fleet", action="store_true")
    parser.add_argument("--fleet-batches", type=int, default=400)
    parser.add_argument("--fleet-sizes", default="1,2,4,8")
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/extract_fleet.json")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.fleet_sizes.split(",")]
    results = measure_fleet(args.fleet_batches, sizes, args.latency_s)
    return 0 if report_fleet(results, args.latency_s, args.json) else 1


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if "--fleet" in given:
        return fleet_main(given)
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.perf_counter()
    console.print(f"settings: {asdict(options)} {environment()}", highlight=False)
    index = sample_index()
    template = batch_template(index)
    document: dict[str, Any] = {
        "settings": {**asdict(options), "json_path": str(options.json_path)},
        "environment": environment(),
    }
    if 1 in options.parts:
        checkpoints = [
            measure_checkpoints(backend, template, options.batches, options.warmup)
            for backend in options.backends
        ]
        report_checkpoints(checkpoints)
        document["checkpoints"] = [result.as_dict() for result in checkpoints]
    if 2 in options.parts:
        throughput = measure_throughput(index, options.text_mb, options.repeats)
        report_throughput(throughput)
        document["throughput"] = throughput.as_dict()
    if 3 in options.parts:
        sizes, modes = options.merge_sizes, options.merge_modes
        memory = measure_memory(template, sizes, modes, options.page_size)
        report_memory(memory, options)
        document["memory"] = memory.as_dict()
    if 4 in options.parts:
        extracts = measure_rss(options.rss_mb)
        report_rss(extracts)
        document["extract_rss"] = rss_dict(extracts)
    elapsed = time.perf_counter() - started
    document["environment"]["load_average_end"] = os.getloadavg()
    document["seconds"] = elapsed
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    options.json_path.write_text(json.dumps(document, indent=2) + "\n")
    console.print(
        f"{elapsed:.0f} s in all; results written to {options.json_path}", highlight=False
    )
    return 0


def ner_main(sizes: list[int]) -> int:
    """``--extractor ner``: throughput and memory of the ner extractor (extract_ner.py)."""
    from benchmarks.extract_ner import GOAL_MB_S, GOAL_MEMORY_RATIO, measure_ner

    started = time.perf_counter()
    results = measure_ner(tuple(sizes))
    table = Table(
        title=f"ner extractor, one process per size: goal >= {GOAL_MB_S:g} MB/s, "
        f"peak RSS largest/smallest <= {GOAL_MEMORY_RATIO:g}"
    )
    for column in ("input kB", "chunks", "mentions", "relations", "load s", "extract s",
                   "MB/s", "MB/CPU-s", "spaCy MB/CPU-s", "spaCy ner-only MB/CPU-s",
                   "RSS loaded MiB", "RSS peak MiB"):  # fmt: skip
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r.text_bytes / 1000:.0f}", str(r.chunks), str(r.mentions), str(r.relations),
            f"{r.load_s:.2f}", f"{r.seconds:.2f}", f"{r.mb_per_s:.4f}",
            f"{r.mb_per_cpu_s:.4f}", f"{r.spacy_mb_per_cpu_s:.4f}",
            f"{r.spacy_ner_only_mb_per_cpu_s:.4f}",
            f"{r.rss_loaded_mib:.0f}", f"{r.rss_peak_mib:.0f}",
        )  # fmt: skip
    console.print(table)
    ratio = results[-1].rss_peak_mib / results[0].rss_peak_mib
    console.print(f"peak RSS ratio {ratio:.3f}; load average {os.getloadavg()}", highlight=False)
    document = {
        "environment": environment(),
        "ner": [r.as_dict() for r in results],
        "rss_ratio": ratio,
        "seconds": time.perf_counter() - started,
    }
    path = ROOT / "benchmarks/results/extract_bench_ner.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
