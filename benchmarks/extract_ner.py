"""Throughput and memory of the ner extractor (spaCy), one process per input size.

Each size runs in a fresh child process: load the pipeline, then extract every default
chunk (4,000 characters, 200 overlap) of that much shuffled sample text, in order, as a
run's batches would. Reported: MB/s of input per process (pipeline load excluded), by wall
time and by the process's CPU time (the one to compare on a shared machine), the spaCy
pipeline's own CPU MB/s on the first chunks (the ceiling), and the peak RSS after the load and
at the end of the extraction. Goals: >= 1 MB/s per process; peak RSS flat in
the input size (largest / smallest <= 1.2).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOAL_MB_S = 1.0
GOAL_MEMORY_RATIO = 1.2


@dataclass(frozen=True, slots=True)
class NerResult:
    text_bytes: int
    chunks: int
    mentions: int
    relations: int
    load_s: float
    seconds: float
    mb_per_s: float
    rss_loaded_mib: float
    rss_peak_mib: float
    # CPU time of this process: what wall time is on a machine other processes share.
    cpu_s: float = 0.0
    mb_per_cpu_s: float = 0.0
    # The ceiling: the spaCy pipeline alone on the same chunks (its components as the
    # extractor runs them), and its tok2vec + ner alone (no parse: no relations), CPU MB/s.
    spacy_mb_per_cpu_s: float = 0.0
    spacy_ner_only_mb_per_cpu_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_ner(sizes: tuple[int, ...], model: str = "en_core_web_sm") -> list[NerResult]:
    """One child process per size (bytes), smallest first."""
    results: list[NerResult] = []
    for size in sorted(sizes):
        child = subprocess.run(
            [sys.executable, __file__, str(size), model],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
        )
        results.append(NerResult(**json.loads(child.stdout.strip().splitlines()[-1])))
    return results


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _child(size: int, model: str) -> None:
    from benchmarks.extract_data import sample_index, shuffled_text
    from genkeep.extract.chunking import chunk_text
    from genkeep.extract.model import ChunkParams
    from genkeep.extract.ner.extractor import NerExtractor

    index = sample_index()
    text = shuffled_text(size)
    chunks = chunk_text(text, ChunkParams())
    extractor = NerExtractor(model)
    started = time.perf_counter()
    extractor.nlp  # noqa: B018 - the load, timed apart
    extractor.extract_now(chunks[0], index)  # the ontology's mapping and cues, once
    load_s = time.perf_counter() - started
    loaded = _peak_mib()
    mentions = relations = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for chunk in chunks:
        result = extractor.extract_now(chunk, index)
        mentions += len(result.entities)
        relations += len(result.relations)
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    size_bytes = len(text.encode("utf-8"))
    peak = _peak_mib()
    nlp = extractor.nlp
    sample = [c.text for c in chunks[:6]]
    sample_mb = sum(len(t.encode("utf-8")) for t in sample) / 1e6

    def cpu_rate(disable: list[str]) -> float:
        with nlp.select_pipes(disable=[p for p in disable if p in nlp.pipe_names]):
            cpu_started = time.process_time()
            for sample_text in sample:
                nlp(sample_text)
            return sample_mb / (time.process_time() - cpu_started)

    spacy_rate = cpu_rate([])
    ner_only = cpu_rate(["tagger", "parser", "genkeep_blank_lines"])
    print(json.dumps(asdict(NerResult(
        size_bytes, len(chunks), mentions, relations, load_s, seconds,
        size_bytes / seconds / 1e6, loaded, peak, cpu_s, size_bytes / cpu_s / 1e6,
        spacy_rate, ner_only,
    ))))  # fmt: skip


if __name__ == "__main__":
    _child(int(sys.argv[1]), sys.argv[2])
