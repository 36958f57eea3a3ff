"""The streaming merge: deterministic bytes, dedupe across overlaps, parseable documents."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest
from rdflib import RDF, RDFS, Graph, URIRef

from genkeep.errors import BadInput
from genkeep.extract.chunking import batches, chunk_text
from genkeep.extract.dedupe import OverlapWindow, merge_chunk_results
from genkeep.extract.merge import (
    TURTLE_HEADER,
    BatchResult,
    MergeCounts,
    Merger,
    entity_iri,
    merge_batches,
)
from genkeep.extract.model import Chunk, ChunkParams, ChunkResult, Entity, Relation

# rdflib's JSON-LD parser builds a ConjunctiveGraph, which rdflib itself deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

ONTO = "http://example.org/onto#"
BASE = "urn:genkeep:run:test-run/"
LABELS = {"Marie Curie": ONTO + "Person", "Pierre Curie": ONTO + "Person", "Warsaw": ONTO + "City"}
LABELS |= {"Paris": ONTO + "City", "Sorbonne": ONTO + "University"}
TEXT = (
    "Marie Curie was born in Warsaw. She studied in Paris at the Sorbonne. "
    "Pierre Curie met Marie Curie in Paris. Warsaw remembers Marie Curie.\n\n"
    "The Sorbonne is in Paris. Pierre Curie was born in Paris."
)


def find_mentions(chunk: Chunk) -> ChunkResult:
    """A tiny label extractor: every label occurrence, and bornIn within a sentence."""
    entities = [
        Entity(cls, m.group(), chunk.start + m.start(), chunk.start + m.end())
        for label, cls in LABELS.items()
        for m in re.finditer(re.escape(label), chunk.text)
    ]
    relations = []
    for sentence in re.finditer(r"[^.]+\.", chunk.text):
        inside = [
            e
            for e in entities
            if e.start is not None
            and chunk.start + sentence.start() <= e.start < chunk.start + sentence.end()
        ]
        people = [e for e in inside if e.class_iri == ONTO + "Person"]
        cities = [e for e in inside if e.class_iri == ONTO + "City"]
        if "born" in sentence.group():
            relations += [
                Relation(ONTO + "bornIn", p.key, c.key, chunk.start + sentence.start(), c.end)
                for p in people
                for c in cities
            ]
    return ChunkResult(entities, relations)


def batch_results(text: str, params: ChunkParams) -> list[BatchResult]:
    grouped = batches(chunk_text(text, params), params.batch_size)
    return [
        BatchResult.of(i, group, merge_chunk_results(find_mentions(c) for c in group))
        for i, group in enumerate(grouped)
    ]


def node(key: str) -> URIRef:
    return URIRef(entity_iri(BASE, ONTO + key))


def merge(results: list[BatchResult]) -> tuple[bytes, bytes, bytes, MergeCounts]:
    turtle, jsonld, extractions = io.BytesIO(), io.BytesIO(), io.BytesIO()
    merger = Merger(BASE, turtle=turtle, jsonld=jsonld, extractions=extractions)
    for batch in results:
        merger.add_batch(batch)
    counts = merger.finish()
    return turtle.getvalue(), jsonld.getvalue(), extractions.getvalue(), counts


PARAMS = ChunkParams(size=60, overlap=30, batch_size=2)


def test_output_is_byte_identical_for_the_same_input() -> None:
    first = merge(batch_results(TEXT, PARAMS))
    second = merge(batch_results(TEXT, PARAMS))
    assert first == second
    assert b"Marie Curie" in first[0]


def test_turtle_and_json_ld_hold_the_same_triples() -> None:
    turtle, jsonld, _, counts = merge(batch_results(TEXT, PARAMS))
    from_turtle = Graph().parse(data=turtle, format="turtle")
    from_jsonld = Graph().parse(data=jsonld, format="json-ld")
    assert set(from_turtle) == set(from_jsonld)
    assert len(from_turtle) == 2 * counts.entities + counts.relations
    assert counts.relations == 2
    born = set(from_turtle.subject_objects(URIRef(ONTO + "bornIn")))
    assert born == {
        (node("Person|marie curie"), node("City|warsaw")),
        (node("Person|pierre curie"), node("City|paris")),
    }


def test_an_entity_found_in_many_batches_is_written_once() -> None:
    results = batch_results(TEXT, PARAMS)
    carrying = [b.index for b in results if any(e.surface == "Marie Curie" for e in b.entities)]
    assert len(carrying) >= 2
    turtle, _, _, counts = merge(results)
    graph = Graph().parse(data=turtle, format="turtle")
    marie = URIRef(entity_iri(BASE, f"{ONTO}Person|marie curie"))
    assert list(graph.objects(marie, RDF.type)) == [URIRef(ONTO + "Person")]
    assert [str(label) for label in graph.objects(marie, RDFS.label)] == ["Marie Curie"]
    assert turtle.count(f"<{marie}> a ".encode()) == 1
    assert counts.entities == len(LABELS)


def test_a_relation_found_in_two_batches_is_written_once() -> None:
    marie, paris = Entity(ONTO + "Person", "Marie", 0, 5), Entity(ONTO + "City", "Paris", 20, 25)
    born = Relation(ONTO + "bornIn", marie.key, paris.key, 0, 25)
    turtle, _, _, counts = merge(
        [BatchResult(0, 0, [marie, paris], [born, born]), BatchResult(1, 10, [paris], [born])]
    )
    assert (counts.relations, counts.duplicate_relations) == (1, 2)
    assert (counts.mentions, counts.duplicate_mentions) == (2, 1)
    assert turtle.count(f"<{ONTO}bornIn>".encode()) == 1


def test_jsonl_lines_are_grounded_and_overlaps_counted_once() -> None:
    results = batch_results(TEXT, PARAMS)
    _, _, extractions, counts = merge(results)
    lines = [json.loads(line) for line in extractions.decode().splitlines()]
    assert len(lines) == counts.mentions
    for line in lines:
        assert TEXT[line["start"] : line["end"]] == line["surface"]
        assert line["alignment"] == "exact"
        assert line["entity"] == entity_iri(BASE, f"{line['class']}|{line['surface'].casefold()}")
    spans = [(line["class"], line["start"], line["end"]) for line in lines]
    assert len(spans) == len(set(spans))
    every = {
        (cls, m.start(), m.end()) for label, cls in LABELS.items() for m in re.finditer(label, TEXT)
    }
    assert set(spans) == every
    assert counts.duplicate_mentions > 0  # the overlap found some twice
    assert [line["batch"] for line in lines] == sorted(line["batch"] for line in lines)


def test_empty_input_gives_valid_empty_documents() -> None:
    turtle, jsonld, extractions, counts = merge([])
    assert turtle == TURTLE_HEADER
    assert len(Graph().parse(data=turtle, format="turtle")) == 0
    assert json.loads(jsonld)["@graph"] == []
    assert len(Graph().parse(data=jsonld, format="json-ld")) == 0
    assert extractions == b""
    assert counts == MergeCounts(0, 0, 0, 0, 0, 0)


async def test_async_batches_give_the_same_bytes() -> None:
    results = batch_results(TEXT, PARAMS)

    async def pages() -> AsyncIterator[BatchResult]:
        for batch in results:
            yield batch

    turtle = io.BytesIO()
    counts = await merge_batches(pages(), Merger(BASE, turtle=turtle))
    assert turtle.getvalue() == merge(results)[0]
    assert counts == merge(results)[3]


def test_unaligned_mentions_and_odd_labels_survive() -> None:
    odd = Entity(ONTO + "Person", 'Ada "the" \\ Countess\n\x01', None, None, "unaligned")
    turtle, jsonld, extractions, counts = merge([BatchResult(0, 0, [odd, odd])])
    assert counts.mentions == 1
    line = json.loads(extractions)
    assert (line["start"], line["end"], line["alignment"]) == (None, None, "unaligned")
    labels = {str(o) for o in Graph().parse(data=turtle, format="turtle").objects(None, RDFS.label)}
    assert labels == {'Ada "the" \\ Countess \x01'}
    assert set(Graph().parse(data=turtle, format="turtle")) == set(
        Graph().parse(data=jsonld, format="json-ld")
    )


def test_batches_must_come_in_order_and_once() -> None:
    merger = Merger(BASE)
    merger.add_batch(BatchResult(1, 10))
    with pytest.raises(ValueError, match="out of order"):
        merger.add_batch(BatchResult(1, 10))
    with pytest.raises(ValueError, match="out of text order"):
        merger.add_batch(BatchResult(2, 5))
    merger.finish()
    with pytest.raises(RuntimeError):
        merger.add_batch(BatchResult(3, 20))


@pytest.mark.parametrize("iri", ["relative/path", "urn:x y", "http://x/<a>", ""])
def test_bad_iris_are_refused(iri: str) -> None:
    with pytest.raises(BadInput):
        Merger(iri)
    merger = Merger(BASE, turtle=io.BytesIO())
    with pytest.raises(BadInput):
        merger.add_batch(BatchResult(0, 0, [Entity(iri, "x", 0, 1)]))


def test_entity_iris_are_readable_stable_and_distinct() -> None:
    marie = entity_iri(BASE, f"{ONTO}Person|marie curie")
    assert re.fullmatch(rf"{re.escape(BASE)}entity/marie-curie-[0-9a-f]{{10}}", marie)
    assert marie == entity_iri(BASE, f"{ONTO}Person|marie curie")
    assert marie != entity_iri(BASE, f"{ONTO}City|marie curie")
    assert entity_iri(BASE, f"{ONTO}City|東京").startswith(f"{BASE}entity/")
    assert entity_iri(BASE, f"{ONTO}City|Zürich ").split("/")[-1].startswith("zurich-")


def test_merge_chunk_results_orders_and_keeps_the_best_alignment() -> None:
    fuzzy = Entity(ONTO + "City", "paris", 10, 15, "fuzzy")
    exact = Entity(ONTO + "City", "Paris", 10, 15, "exact")
    late = Entity(ONTO + "Person", "Marie", 0, 5)
    lost = Entity(ONTO + "City", "Lyon", None, None, "unaligned")
    rel = Relation(ONTO + "bornIn", late.key, exact.key, 0, 15)
    merged = merge_chunk_results(
        [ChunkResult([lost, fuzzy], [rel]), ChunkResult([exact, late, lost], [rel])]
    )
    assert merged.entities == [late, exact, lost]
    assert merged.relations == [rel]


def test_overlap_window_forgets_spans_no_later_batch_can_repeat() -> None:
    window = OverlapWindow()
    a, b = Entity(ONTO + "City", "Paris", 10, 15), Entity(ONTO + "City", "Lyon", 40, 44)
    assert window.admit(0, [a, b]) == ([a, b], 0)
    assert window.admit(30, [b]) == ([], 1)
    # A batch from offset 30 on cannot repeat a span from 10: it was forgotten.
    assert window.admit(30, [a]) == ([a], 0)


class CountingSink:
    """Keeps a digest and a size, not the bytes, so memory measures the merger alone."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def synthetic(batch_count: int, per_batch: int = 20) -> Iterator[BatchResult]:
    """Batches of ``per_batch`` mentions (and a relation per 4) over 500 distinct entities."""
    for index in range(batch_count):
        base = index * 30_000
        entities = [
            Entity(ONTO + "Person", f"P{(index * 7 + k) % 500}", base + 100 * k, base + 100 * k + 9)
            for k in range(per_batch)
        ]
        relations = [
            Relation(ONTO + "knows", entities[k].key, entities[k + 1].key, base, base + 200)
            for k in range(0, per_batch - 1, 4)
        ]
        yield BatchResult(index, base, entities, relations)


def peak_bytes(batch_count: int, per_batch: int = 20) -> int:
    sinks = [CountingSink(), CountingSink(), CountingSink()]
    tracemalloc.start()
    try:
        merger = Merger(BASE, turtle=sinks[0], jsonld=sinks[1], extractions=sinks[2])
        for batch in synthetic(batch_count, per_batch):
            merger.add_batch(batch)
        merger.finish()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_number_of_batches() -> None:
    small, large = peak_bytes(100), peak_bytes(1_000)
    assert large <= 1.2 * small, (small, large)
