"""The streaming merge (I9): batches, in order, written straight into the run's documents.

Three documents, each to a binary sink (a temp file, then the blob store):

- ``graph.ttl``: a prefix header, then each entity once (``a <class> ; rdfs:label``), then
  each relation once, as triples between entity IRIs;
- ``graph.jsonld``: the same triples as one streamed ``@graph`` array;
- ``extractions.jsonl``: one line per grounded mention (offsets, surface, class, batch).

The merger dedupes: within a batch, a mention is counted once per ``(class, start, end)``;
across batches, a mention an earlier batch gave is dropped (``OverlapWindow``). Callers may
pass raw concatenated chunk results. Memory does not grow with batches: the merger keeps the
keys of the entities and relations already written (so it grows with *distinct* entities and
relations only) and the spans of about one batch. Output bytes depend only on the inputs.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from genkeep.errors import BadInput
from genkeep.extract.dedupe import OverlapWindow, unique_mentions, unique_relations
from genkeep.extract.model import Chunk, ChunkResult, Entity, Relation

RDFS = "http://www.w3.org/2000/01/rdf-schema#"
TURTLE_HEADER = f"@prefix rdfs: <{RDFS}> .\n\n".encode()
_JSONLD_OPEN = ('{"@context": {"rdfs": "' + RDFS + '"},\n"@graph": [\n').encode()
_JSONLD_CLOSE = b"\n]}\n"
# Characters an IRIREF may not hold (Turtle grammar), and the scheme every IRI must start with.
_NOT_IRI = re.compile(r'[\x00-\x20<>"{}|^`\\\ud800-\udfff]')
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_SLUG_CHARS = 48
_UNCUED_EXAMPLES = 3
_TURTLE_ESCAPES: dict[int, str] = {code: f"\\u{code:04X}" for code in [*range(0x20), 0x7F]} | {
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
_SURROGATES = {code: "\ufffd" for code in range(0xD800, 0xE000)}


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One batch's extractions; ``start`` is the offset of the batch's first chunk."""

    index: int
    start: int
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)

    @classmethod
    def of(cls, index: int, chunks: list[Chunk], result: ChunkResult) -> BatchResult:
        return cls(index, chunks[0].start, list(result.entities), list(result.relations))


@dataclass(frozen=True, slots=True)
class MergeCounts:
    batches: int
    mentions: int  # lines in extractions.jsonl
    duplicate_mentions: int  # found again in an overlap, counted once
    entities: int  # distinct entities written
    relations: int  # distinct relation triples written
    duplicate_relations: int  # the same triple again (the graph holds it once)


def entity_iri(base_iri: str, key: str) -> str:
    """``<base>entity/<slug>-<hash>``: readable, and unique per ``Entity.key``."""
    name = key.partition("|")[2]
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SLUG_JUNK.sub("-", ascii_name.lower()).strip("-")[:_SLUG_CHARS].rstrip("-")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{base_iri}entity/{slug}-{digest}" if slug else f"{base_iri}entity/{digest}"


class Merger:
    """Writes batches as they come; ``finish()`` closes the documents and returns counts."""

    def __init__(
        self,
        base_iri: str,
        *,
        turtle: BinarySink | None = None,
        jsonld: BinarySink | None = None,
        extractions: BinarySink | None = None,
    ) -> None:
        _check_iri(base_iri, "run base IRI")
        self._base = base_iri if base_iri.endswith(("/", "#")) else base_iri + "/"
        self._turtle = turtle
        self._jsonld = jsonld
        self._extractions = extractions
        self._window = OverlapWindow()
        # Key -> IRI of every entity written: grows with distinct entities, never with batches.
        self._entities: dict[str, str] = {}
        self._relations: set[tuple[str, str, str]] = set()
        self._last_index: int | None = None
        self._finished = False
        self._graph_nodes = 0
        self._counts = {"batches": 0, "mentions": 0, "duplicate_mentions": 0}
        self._duplicate_relations = 0
        # Relations no word of the text supports, by property: a few examples each, and counts.
        self.uncued: dict[str, tuple[int, list[tuple[str, str]]]] = {}
        if turtle is not None:
            turtle.write(TURTLE_HEADER)
        if jsonld is not None:
            jsonld.write(_JSONLD_OPEN)

    def add_batch(self, batch: BatchResult) -> None:
        if self._finished:
            raise RuntimeError("the merge is finished")
        if self._last_index is not None and batch.index <= self._last_index:
            raise ValueError(f"batch {batch.index} after batch {self._last_index}: out of order")
        mentions = unique_mentions(batch.entities)
        within = len(batch.entities) - len(mentions)
        mentions, across = self._window.admit(batch.start, mentions)
        self._last_index = batch.index
        self._counts["batches"] += 1
        self._counts["mentions"] += len(mentions)
        self._counts["duplicate_mentions"] += within + across

        turtle: list[str] = []
        nodes: list[dict[str, Any]] = []
        lines: list[str] = []
        for entity in mentions:
            key = entity.key
            iri = self._entities.get(key)
            if iri is None:
                _check_iri(entity.class_iri, "class IRI")
                iri = self._entities[key] = entity_iri(self._base, key)
                name = entity.surface if entity.name is None else entity.name
                label = " ".join(name.split()).translate(_SURROGATES)
                turtle.append(
                    f"<{iri}> a <{entity.class_iri}> ;\n    rdfs:label {_turtle_string(label)} .\n"
                )
                nodes.append({"@id": iri, "@type": entity.class_iri, "rdfs:label": label})
            lines.append(_mention_line(batch.index, entity, iri))
        written = 0
        for relation in unique_relations(batch.relations):
            # A literal object is a value, never an entity's key of the same spelling.
            obj_key = "\x00" + relation.object_key if relation.literal else relation.object_key
            triple = (relation.subject_key, relation.property_iri, obj_key)
            if triple in self._relations:
                continue
            _check_iri(relation.property_iri, "property IRI")
            self._relations.add(triple)
            written += 1
            subject = self._iri(relation.subject_key)
            if relation.literal:
                value = relation.object_key.translate(_SURROGATES)
                turtle.append(f"<{subject}> <{relation.property_iri}> {_turtle_string(value)} .\n")
                nodes.append({"@id": subject, relation.property_iri: value})
            else:
                obj = self._iri(relation.object_key)
                turtle.append(f"<{subject}> <{relation.property_iri}> <{obj}> .\n")
                nodes.append({"@id": subject, relation.property_iri: {"@id": obj}})
            if relation.cue is None:
                self._note_uncued(relation)
        self._duplicate_relations += len(batch.relations) - written
        self._write(turtle, nodes, lines)

    def finish(self) -> MergeCounts:
        if self._finished:
            raise RuntimeError("the merge is finished")
        self._finished = True
        if self._jsonld is not None:
            self._jsonld.write(_JSONLD_CLOSE)
        return MergeCounts(
            batches=self._counts["batches"],
            mentions=self._counts["mentions"],
            duplicate_mentions=self._counts["duplicate_mentions"],
            entities=len(self._entities),
            relations=len(self._relations),
            duplicate_relations=self._duplicate_relations,
        )

    def _note_uncued(self, relation: Relation) -> None:
        count, examples = self.uncued.get(relation.property_iri, (0, []))
        if len(examples) < _UNCUED_EXAMPLES:
            examples.append((relation.subject_key, relation.object_key))
        self.uncued[relation.property_iri] = (count + 1, examples)

    def _iri(self, key: str) -> str:
        iri = self._entities.get(key)
        return iri if iri is not None else entity_iri(self._base, key)

    def _write(self, turtle: list[str], nodes: list[dict[str, Any]], lines: list[str]) -> None:
        # One write per document per batch: few system calls, nothing kept afterwards.
        if self._turtle is not None and turtle:
            self._turtle.write("".join(turtle).encode())
        if self._jsonld is not None and nodes:
            parts = [_json(node) for node in nodes]
            prefix = ",\n" if self._graph_nodes else ""
            self._jsonld.write((prefix + ",\n".join(parts)).encode("utf-8", "backslashreplace"))
        self._graph_nodes += len(nodes)
        if self._extractions is not None and lines:
            self._extractions.write("".join(lines).encode("utf-8", "backslashreplace"))


async def merge_batches(
    batches: Iterable[BatchResult] | AsyncIterable[BatchResult], merger: Merger
) -> MergeCounts:
    """Feed ``batches`` (in order, e.g. a page-by-page reader) to ``merger`` and finish it."""
    if isinstance(batches, AsyncIterable):
        async for batch in batches:
            merger.add_batch(batch)
    else:
        for batch in batches:
            merger.add_batch(batch)
    return merger.finish()


def _mention_line(batch_index: int, entity: Entity, iri: str) -> str:
    line = {
        "batch": batch_index,
        "start": entity.start,
        "end": entity.end,
        "surface": entity.surface,
        "class": entity.class_iri,
        "alignment": entity.alignment,
        "entity": iri,
    }
    return _json(line) + "\n"


# One encoder for every mention: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def _json(value: object) -> str:
    # Lone surrogates survive as \\uXXXX escapes once encoded with "backslashreplace".
    return _ENCODER.encode(value)


def _turtle_string(value: str) -> str:
    return '"' + value.translate(_TURTLE_ESCAPES) + '"'


def _check_iri(iri: str, what: str) -> None:
    if not _SCHEME.match(iri) or _NOT_IRI.search(iri):
        raise BadInput(f"{what} is not an absolute IRI: {iri[:200]!r}")
