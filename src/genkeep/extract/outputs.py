"""A finished run's documents: merged from the stored batches, validated, stored as blobs."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from rdflib import Graph

from genkeep.blobs import BlobStore
from genkeep.db.models import Run
from genkeep.db.runs import RunStore
from genkeep.extract.merge import BatchResult, Merger
from genkeep.extract.validate import open_properties, uncued_problems, validate_graph

DOCUMENTS = {
    "turtle": ("graph.ttl", "text/turtle; charset=utf-8"),
    "jsonld": ("graph.jsonld", "application/ld+json"),
    "jsonl": ("extractions.jsonl", "application/jsonl"),
}


def base_iri(run: Run) -> str:
    """Entity IRIs depend on the input and ontology, never on the run: a resumed run and an
    uninterrupted one write the same bytes."""
    return f"urn:genkeep:graph:{run.input_sha256[:16]}:{run.ontology_hash[:16]}/"


async def write_outputs(
    runs: RunStore,
    blobs: BlobStore,
    run: Run,
    total_batches: int,
    ontology: bytes,
    decode: Any,
) -> dict[str, Any]:
    """Stream the batches in order into the documents (I9); with zero batches the merge is
    skipped and the documents are empty but valid (I8)."""
    with tempfile.TemporaryDirectory(prefix="genkeep-merge-") as folder:
        paths = {name: Path(folder) / filename for name, (filename, _) in DOCUMENTS.items()}
        with (
            paths["turtle"].open("wb") as turtle,
            paths["jsonld"].open("wb") as jsonld,
            paths["jsonl"].open("wb") as jsonl,
        ):
            merger = Merger(base_iri(run), turtle=turtle, jsonld=jsonld, extractions=jsonl)
            if total_batches:
                async for index, text in runs.iter_results(run.id, total_batches):
                    start, result = decode(text)
                    merger.add_batch(BatchResult(index, start, result.entities, result.relations))
            counts = merger.finish()
        graph = await asyncio.to_thread(paths["turtle"].read_bytes)
        ontology_graph = Graph().parse(data=ontology, format="nt")
        report = await asyncio.to_thread(validate_graph, graph, ontology_graph)
        problems = uncued_problems(merger.uncued, open_properties(ontology_graph))
        problems += report.problems
        outputs: dict[str, Any] = {
            "counts": {
                "batches": counts.batches,
                "mentions": counts.mentions,
                "duplicate_mentions": counts.duplicate_mentions,
                "entities": counts.entities,
                "relations": counts.relations,
            },
            "validation": {"conforms": not problems, "problems": problems[:50]},
        }
        for name, (filename, media_type) in DOCUMENTS.items():
            key = f"owners/{run.owner_id}/runs/{run.id}/{filename}"
            info = await blobs.put_file(key, paths[name], content_type=media_type)
            outputs[name] = {
                "key": info.key,
                "size": info.size,
                "sha256": info.sha256,
                "filename": filename,
                "media_type": media_type,
            }
    return outputs
