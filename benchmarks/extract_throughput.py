"""Throughput of chunking and of the built-in extractor on a few MB of shuffled sample text.

Three timings, each the median of ``repeats`` passes over the same text (MB/s of input):

- chunking: ``chunk_text`` with the default parameters;
- extraction: ``BuiltinExtractor.extract_now`` on every chunk;
- batch work: what the runner does per batch besides the database, the extraction, then
  ``merge_chunk_results``, ``encode_result`` and the sorted entity keys.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.extract_data import shuffled_text
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.chunking import batches, chunk_text
from genkeep.extract.dedupe import merge_chunk_results
from genkeep.extract.index import OntologyIndex
from genkeep.extract.model import Chunk, ChunkParams
from genkeep.extract.runner import encode_result

MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    seconds: float  # median of the passes
    mb_per_s: float
    passes: list[float]


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    text_bytes: int
    text_chars: int
    chunks: int
    chunked_chars: int  # with the overlaps: what the extractor reads
    batches: int
    mentions: int
    relations: int
    chunking: Rate
    extraction: Rate
    batch_work: Rate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_throughput(index: OntologyIndex, megabytes: float, repeats: int) -> ThroughputResult:
    text = shuffled_text(int(megabytes * MB))
    size = len(text.encode("utf-8"))
    params = ChunkParams()
    chunks = chunk_text(text, params)
    plan = batches(chunks, params.batch_size)
    extractor = BuiltinExtractor()
    found = [extractor.extract_now(chunk, index) for chunk in chunks]  # warm-up, and counts

    def extract_all() -> None:
        for chunk in chunks:
            extractor.extract_now(chunk, index)

    def batch_work() -> None:
        for batch in plan:
            _one_batch(extractor, index, batch)

    return ThroughputResult(
        text_bytes=size,
        text_chars=len(text),
        chunks=len(chunks),
        chunked_chars=sum(len(chunk.text) for chunk in chunks),
        batches=len(plan),
        mentions=sum(len(result.entities) for result in found),
        relations=sum(len(result.relations) for result in found),
        chunking=_rate(lambda: chunk_text(text, params), size, repeats),
        extraction=_rate(extract_all, size, repeats),
        batch_work=_rate(batch_work, size, repeats),
    )


def _one_batch(extractor: BuiltinExtractor, index: OntologyIndex, batch: list[Chunk]) -> None:
    result = merge_chunk_results([extractor.extract_now(chunk, index) for chunk in batch])
    encode_result(batch[0].start, result)
    sorted({entity.key for entity in result.entities})


def _rate(work: Callable[[], object], size: int, repeats: int) -> Rate:
    passes: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        passes.append(time.perf_counter() - started)
    median = statistics.median(passes)
    return Rate(seconds=median, mb_per_s=size / MB / median, passes=passes)
