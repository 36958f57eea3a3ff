"""One extraction run spread over 1, 2, 4 and 8 worker processes (``extract_bench.py --fleet``).

A fake OpenAI-compatible extractor (tests/support/fake_openai.py) answers every call after
``--latency-s`` (0.2 s); the text is cut into ``--batches`` batches of one chunk each, all
different (no cache hit). Each size gets a fresh SQLite file: this process executes the run
(one batch at a time) and N-1 ``genkeep worker`` processes (one fleet slot each, started and
ready before the run) help it. Timed: ``ExtractionRunner.execute``, start to merged outputs.
Goal: speedup >= 6x at 8 workers against 1; Turtle, JSON-LD and JSONL byte-identical.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genkeep.config import Settings  # noqa: E402
from genkeep.extract.chunking import chunk_text  # noqa: E402
from genkeep.extract.model import ChunkParams  # noqa: E402
from genkeep.services import close_services, open_services  # noqa: E402
from tests.support.fake_openai import FakeOpenAI, extraction_answer, slow  # noqa: E402

SAMPLES = ROOT / "src/genkeep/extract/samples"
DOCUMENTS = ("turtle", "jsonld", "jsonl")
GOAL_SPEEDUP = 6.0
CHUNK = 600
console = Console(width=max(Console().width, 130))


@dataclass(frozen=True, slots=True)
class FleetRun:
    workers: int
    batches: int
    seconds: float
    shares: list[int]
    sha256: dict[str, str]


def fleet_text(batches: int) -> str:
    """Numbered sample paragraphs, cut to ``batches`` chunks of CHUNK characters."""
    paragraphs = [p for p in (SAMPLES / "text.md").read_text().split("\n\n") if p.strip()]
    parts: list[str] = []
    index = 0
    while sum(len(p) + 2 for p in parts) < batches * CHUNK + CHUNK:
        parts.append(f"Part {index}. {paragraphs[index % len(paragraphs)]}")
        index += 1
    text = "\n\n".join(parts)
    chunks = chunk_text(text, ChunkParams(size=CHUNK, overlap=0, batch_size=1))
    return text[: chunks[batches - 1].end]


def _env(database_url: str, folder: Path, fake: FakeOpenAI) -> dict[str, str]:
    return {
        "GENKEEP_DATABASE_URL": database_url,
        "GENKEEP_DATA_DIR": str(folder / "var"),
        "GENKEEP_BLOB_DIR": str(folder / "blobs"),
        "GENKEEP_SIGNING_KEY": "fleet-bench-signing-key",
        "GENKEEP_LOG_LEVEL": "warning",
        "GENKEEP_EXTRACT_LLM_MODEL": "gpt-fake-extract",
        "GENKEEP_OPENAI_BASE_URL": fake.base_url,
        "GENKEEP_OPENAI_API_KEY": "sk-fake",
        "GENKEEP_OPENAI_MAX_RETRIES": "0",
        "GENKEEP_EXTRACT_CONCURRENCY": "1",
        "GENKEEP_EXTRACT_FLEET_SLOTS": "1",
        "GENKEEP_EXTRACT_RUN_CONCURRENCY": "64",
        "GENKEEP_EXTRACT_POLL_S": "0.05",
        "PYTHONPATH": str(ROOT / "src"),
    }


def _start_helpers(count: int, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    """``count`` genkeep workers, returned once each has said it is ready."""
    command = [sys.executable, "-m", "genkeep.cli", "worker", "--concurrency", "1"]
    helpers = [
        subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for helper in helpers:
        assert helper.stderr is not None
        line = helper.stderr.readline()
        if "worker" not in line:
            raise RuntimeError(f"a worker did not start: {line}{helper.stderr.read()}")
    return helpers


async def _run_once(workers: int, text: str, fake: FakeOpenAI) -> FleetRun:
    with tempfile.TemporaryDirectory(prefix="genkeep-fleet-") as name:
        folder = Path(name)
        env = _env(f"sqlite:///{folder / 'fleet.db'}", folder, fake)
        settings = Settings(
            database_url=env["GENKEEP_DATABASE_URL"],
            data_dir=folder / "var",
            blob_dir=folder / "blobs",
            signing_key="fleet-bench-signing-key",
            extract_llm_model="gpt-fake-extract",
            openai_base_url=fake.base_url,
            openai_api_key="sk-fake",
            openai_max_retries=0,
            extract_concurrency=1,
            extract_run_concurrency=64,
            extract_poll_s=0.05,
            _env_file=None,
        )
        services = await open_services(settings)  # creates and migrates the file first
        helpers = await asyncio.to_thread(_start_helpers, workers - 1, env)
        try:
            extraction = services.extraction
            request = extraction.setup.request(
                text,
                "fleet.md",
                (SAMPLES / "ontology.ttl").read_bytes(),
                "ontology.ttl",
                chunk_size=CHUNK,
                overlap=0,
                batch_size=1,
            )
            run = await extraction.create(settings.default_owner, request, "llm")
            inputs = await extraction.inputs(run)
            started = time.perf_counter()
            status = await extraction.runner().execute(run, inputs, asyncio.Event())
            seconds = time.perf_counter() - started
            assert status == "completed", status
            done = await services.runs.require(settings.default_owner, run.id)
            assert done.outputs is not None
            digests = {}
            for name in DOCUMENTS:
                data = await services.blobs.get(done.outputs[name]["key"])
                digests[name] = hashlib.sha256(data).hexdigest()
            shares = await services.runs.worker_shares(settings.default_owner, run.id)
            return FleetRun(
                workers=workers,
                batches=done.total_batches,
                seconds=seconds,
                shares=sorted((s.batches for s in shares), reverse=True),
                sha256=digests,
            )
        finally:
            for helper in helpers:
                helper.terminate()
            for helper in helpers:
                helper.wait(timeout=60)
            await close_services(services)


def measure_fleet(batches: int, sizes: list[int], latency_s: float) -> list[FleetRun]:
    text = fleet_text(batches)
    results: list[FleetRun] = []
    with FakeOpenAI(answer=extraction_answer, default=slow(latency_s)) as fake:
        for workers in sizes:
            before = fake.calls
            result = asyncio.run(_run_once(workers, text, fake))
            calls = fake.calls - before
            if calls != result.batches:
                raise AssertionError(f"{calls} model calls for {result.batches} batches")
            results.append(result)
            console.print(
                f"{workers} worker(s): {result.seconds:.1f} s, shares {result.shares}",
                highlight=False,
            )
    return results


def report_fleet(results: list[FleetRun], latency_s: float, json_path: Path) -> bool:
    base = results[0].seconds
    table = Table(
        title=f"One run of {results[0].batches} batches ({latency_s * 1000:.0f} ms per model "
        f"call) on N worker processes, SQLite; goal speedup >= {GOAL_SPEEDUP:g}x at 8"
    )
    for column in ("workers", "seconds", "batches/s", "speedup", "batches per worker"):
        table.add_column(column, justify="right")
    for name in DOCUMENTS:
        table.add_column(f"{name} sha256", justify="left")
    for result in results:
        table.add_row(
            str(result.workers),
            f"{result.seconds:.1f}",
            f"{result.batches / result.seconds:.1f}",
            f"{base / result.seconds:.2f}x",
            " ".join(str(n) for n in result.shares),
            *(result.sha256[name][:16] for name in DOCUMENTS),
        )
    console.print(table)
    identical = all(r.sha256 == results[0].sha256 for r in results)
    for name in DOCUMENTS:
        console.print(f"{name}: sha256 {results[0].sha256[name]}", highlight=False)
    console.print(f"byte-identical across all sizes: {'yes' if identical else '[red]NO[/]'}")
    speedup = base / results[-1].seconds
    met = speedup >= GOAL_SPEEDUP
    console.print(
        f"speedup at {results[-1].workers}: {speedup:.2f}x "
        f"({'ok' if met else '[red]missed[/]'}); load average {os.getloadavg()}",
        highlight=False,
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "latency_s": latency_s,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "identical": identical,
        "speedup": speedup,
        "runs": [asdict(r) for r in results],
        "calls_per_worker_share": [dict(Counter(r.shares)) for r in results],
    }
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    return identical
