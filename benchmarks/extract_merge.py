"""Child process of extract_bench: one streaming merge of a stored run, then its peak RSS.

    python -m benchmarks.extract_merge --url URL --run-id ID --batches N [--mode merge|outputs]
        [--page-size P]

``merge`` is write_outputs' merge exactly (``RunStore.iter_results`` page by page ->
``decode_result`` -> ``Merger`` -> three temp files); ``outputs`` calls ``write_outputs``
itself (the merge, then validation and the copies into a local blob store). Prints one JSON
line: peak RSS (VmHWM) and RSS just before the merge, both in KiB, time and counts.
``--page-size`` (merge mode only) overrides ``iter_results``' page, to see what it costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.extract_data import OWNER, sample_ontology
from genkeep.blobs import open_blob_store
from genkeep.config import Settings
from genkeep.db.database import Database
from genkeep.db.runs import RunStore
from genkeep.extract.merge import BatchResult, Merger
from genkeep.extract.ontology import load_ontology
from genkeep.extract.outputs import DOCUMENTS, base_iri, write_outputs
from genkeep.extract.runner import decode_result


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, in KiB."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


async def merge_only(
    runs: RunStore, run_id: str, batches: int, page_size: int | None
) -> dict[str, Any]:
    """The loop of ``write_outputs`` up to ``merger.finish()``, into temp files."""
    run = await runs.require(OWNER, run_id)
    with tempfile.TemporaryDirectory(prefix="genkeep-bench-merge-") as folder:
        paths = {name: Path(folder) / filename for name, (filename, _) in DOCUMENTS.items()}
        with (
            paths["turtle"].open("wb") as turtle,
            paths["jsonld"].open("wb") as jsonld,
            paths["jsonl"].open("wb") as jsonl,
        ):
            merger = Merger(base_iri(run), turtle=turtle, jsonld=jsonld, extractions=jsonl)
            pages = (
                runs.iter_results(run.id, batches)
                if page_size is None
                else runs.iter_results(run.id, batches, page_size=page_size)
            )
            async for index, text in pages:
                start, result = decode_result(text)
                merger.add_batch(BatchResult(index, start, result.entities, result.relations))
            counts = merger.finish()
        sizes = {name: path.stat().st_size for name, path in paths.items()}
    return {
        "batches": counts.batches,
        "mentions": counts.mentions,
        "entities": counts.entities,
        "relations": counts.relations,
        "bytes": sizes,
    }


async def full_outputs(runs: RunStore, run_id: str, batches: int, url: str) -> dict[str, Any]:
    run = await runs.require(OWNER, run_id)
    ontology = load_ontology(sample_ontology(), name="ontology.ttl").canonical
    with tempfile.TemporaryDirectory(prefix="genkeep-bench-blobs-") as folder:
        settings = Settings(database_url=url, data_dir=Path(folder), blob_dir=Path(folder) / "b")
        blobs = await open_blob_store(settings)
        try:
            outputs = await write_outputs(runs, blobs, run, batches, ontology, decode_result)
        finally:
            await blobs.aclose()
    counts = outputs["counts"]
    return {
        "batches": counts["batches"],
        "mentions": counts["mentions"],
        "entities": counts["entities"],
        "relations": counts["relations"],
        "bytes": {name: outputs[name]["size"] for name in DOCUMENTS},
        "conforms": outputs["validation"]["conforms"],
    }


async def main_async(options: argparse.Namespace) -> dict[str, Any]:
    database = Database(options.url)
    runs = RunStore(database)
    try:
        await runs.require(OWNER, options.run_id)  # connect before the baseline
        before = memory_kib()["VmRSS"]
        started = time.perf_counter()
        if options.mode == "merge":
            found = await merge_only(runs, options.run_id, options.batches, options.page_size)
        else:
            found = await full_outputs(runs, options.run_id, options.batches, options.url)
        elapsed = time.perf_counter() - started
    finally:
        await database.dispose()
    memory = memory_kib()
    return {
        **found,
        "mode": options.mode,
        "seconds": elapsed,
        "rss_before_kib": before,
        "peak_rss_kib": memory["VmHWM"],
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--mode", choices=("merge", "outputs"), default="merge")
    parser.add_argument("--page-size", type=int)
    print(json.dumps(asyncio.run(main_async(parser.parse_args()))))


if __name__ == "__main__":
    main()
