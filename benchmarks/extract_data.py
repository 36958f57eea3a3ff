"""Inputs for the extraction benchmark: the sample ontology and text, and realistic batches.

A batch is what the runner commits: the built-in extractor's result on 4 default-size chunks
of the sample text, encoded by ``encode_result``, with its sorted entity keys. Entities
repeat across batches as in a real document: batch ``i`` renames every entity to variant
``i % VARIANTS`` ("tram" -> "tram 7"), so a run holds ``VARIANTS`` x the sample's distinct
entities, all of them seen within the first ``VARIANTS`` batches.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import genkeep.extract
from genkeep.core.hashes import sha256_hex
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.chunking import chunk_text
from genkeep.extract.dedupe import merge_chunk_results
from genkeep.extract.index import IndexCache, OntologyIndex
from genkeep.extract.model import ChunkParams
from genkeep.extract.ontology import load_ontology
from genkeep.extract.runner import encode_result

SAMPLES = Path(genkeep.extract.__file__).resolve().parent / "samples"
VARIANTS = 50
CHUNKS_PER_BATCH = 4
OWNER = "bench"


def sample_text() -> str:
    return (SAMPLES / "text.md").read_text(encoding="utf-8")


def sample_ontology() -> bytes:
    return (SAMPLES / "ontology.ttl").read_bytes()


def sample_index() -> OntologyIndex:
    return IndexCache().get(load_ontology(sample_ontology(), name="ontology.ttl"))


def shuffled_text(target_bytes: int, seed: int = 7) -> str:
    """Paragraphs of the sample text drawn at random (fixed seed) until ``target_bytes``."""
    paragraphs = [p.strip() for p in sample_text().split("\n\n") if p.strip()]
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < target_bytes:
        paragraph = rng.choice(paragraphs)
        parts.append(paragraph)
        size += len(paragraph.encode("utf-8")) + 2
    return "\n\n".join(parts) + "\n"


@dataclass(frozen=True, slots=True)
class BatchTemplate:
    """One batch's result as plain dicts (the encoded form) and the text span it covers."""

    entities: list[dict[str, Any]]
    relations: list[dict[str, Any]]
    span: int  # characters of text per batch: batch i starts at i * span

    def variant(self, index: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Batch ``index``'s entities and relations: renamed to its variant, offsets shifted."""
        suffix = f" {index % VARIANTS}"
        shift = index * self.span
        entities = [
            {
                **e,
                "surface": e["surface"] + suffix,
                "start": e["start"] + shift,
                "end": e["end"] + shift,
            }
            for e in self.entities
        ]
        relations = [
            {
                **r,
                "subject_key": r["subject_key"] + suffix,
                "object_key": r["object_key"] + suffix,
                "start": r["start"] + shift,
                "end": r["end"] + shift,
            }
            for r in self.relations
        ]
        return entities, relations

    def encoded(self, index: int) -> str:
        """Exactly ``encode_result(start, result)`` for batch ``index``, without dataclasses."""
        entities, relations = self.variant(index)
        body = {"start": index * self.span, "entities": entities, "relations": relations}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def entity_keys(self, index: int) -> list[str]:
        suffix = f" {index % VARIANTS}"
        keys = {
            f"{e['class_iri']}|{' '.join((e['surface'] + suffix).casefold().split())}"
            for e in self.entities
        }
        return sorted(keys)


def batch_template(index: OntologyIndex) -> BatchTemplate:
    """The built-in extractor on the first 4 default chunks of the repeated sample text."""
    params = ChunkParams()
    text = "\n\n".join([sample_text()] * 8)
    chunks = chunk_text(text, params)[: CHUNKS_PER_BATCH + 1]
    extractor = BuiltinExtractor()
    batch = chunks[:CHUNKS_PER_BATCH]
    result = merge_chunk_results([extractor.extract_now(chunk, index) for chunk in batch])
    # The text starts with a heading, so the first chunk starts at 0: offsets need no rebasing.
    body = json.loads(encode_result(batch[0].start, result))
    return BatchTemplate(
        entities=body["entities"],
        relations=body["relations"],
        span=chunks[CHUNKS_PER_BATCH].start,
    )


def run_manifest(text_chars: int) -> dict[str, Any]:
    """A run manifest like ``ExtractionService.create`` writes (the input is not stored)."""
    digest = sha256_hex(uuid.uuid4().bytes)
    ontology = load_ontology(sample_ontology(), name="ontology.ttl")
    return {
        "input_name": "bench.md",
        "input_sha256": digest,
        "input_blob_key": f"owners/{OWNER}/inputs/{digest}",
        "input_chars": text_chars,
        "ontology_hash": ontology.content_hash,
        "extractor_name": BuiltinExtractor.name,
        "extractor_version": BuiltinExtractor.version,
        "chunk_size": ChunkParams().size,
        "chunk_overlap": ChunkParams().overlap,
        "batch_size": CHUNKS_PER_BATCH,
    }
