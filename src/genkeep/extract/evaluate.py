"""Span-level scores of an extractor against gold annotations.

Gold is JSON Lines, one document a line:
``{"text": "...", "entities": [{"start": 4, "end": 16, "class": "<iri>", "surface": "...",
"entity": "Maria Okafor"}], "relations": [{"subject": "Maria Okafor", "property": "<iri>",
"object": "Acme"}]}`` (``surface``, ``entity`` and ``relations`` are optional; ``surface``
must equal ``text[start:end]``, ``entity`` names the entity a mention stands for, by default
its surface; a relation's object is an entity's name or a literal value). A document with
``"scope": "named"`` annotates names only: predicted mentions that do not start with a
capital letter are left out of its scores.

Three levels, each micro-averaged over all documents, overall and per class:
- mentions: a prediction is correct when its (start, end, class) equals a gold span's;
- entities: the distinct (name, class) pairs of a document, names compared case-blind;
- relations: the distinct (subject name, property, object name) triples of a document.
Duplicates count once. With no predictions precision is 1.0, with no gold spans recall is
1.0; F1 is 0.0 when both are 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genkeep.errors import BadInput
from genkeep.extract.model import Chunk, Extractor, OntologyIndexLike

Span = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class GoldDocument:
    text: str
    spans: frozenset[Span]
    # The entity a span names ("Maria" -> "Maria Okafor"); absent: its surface.
    names: dict[Span, str] = field(default_factory=dict)
    # (subject name, property IRI, object name or value), names as in ``names``.
    relations: frozenset[tuple[str, str, str]] = frozenset()
    # Gold of names only ("scope": "named"): predictions of class words are not scored.
    named_only: bool = False


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> Scores:
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, tp, fp, fn)


def load_gold(path: Path | str) -> list[GoldDocument]:
    documents: list[GoldDocument] = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                documents.append(_parse_document(json.loads(line)))
            except (ValueError, TypeError, KeyError) as exc:
                raise BadInput(f"{path}:{number}: bad gold document: {exc}") from exc
    return documents


def score(gold: Iterable[Span], predicted: Iterable[Span]) -> Scores:
    gold_set, predicted_set = set(gold), set(predicted)
    tp = len(gold_set & predicted_set)
    return Scores.from_counts(tp, len(predicted_set) - tp, len(gold_set) - tp)


async def evaluate(gold_path: Path | str, extractor: Extractor, index: OntologyIndexLike) -> Scores:
    """Run the extractor on every gold document (one chunk each) and score its entities."""
    gold: set[tuple[int, Span]] = set()
    predicted: set[tuple[int, Span]] = set()
    for number, document in enumerate(load_gold(gold_path)):
        gold.update((number, span) for span in document.spans)
        chunk = Chunk(index=0, start=0, end=len(document.text), text=document.text)
        result = await extractor.extract(chunk, index)
        predicted.update(
            (number, (entity.start, entity.end, entity.class_iri))
            for entity in result.entities
            if entity.start is not None and entity.end is not None
        )
    tp = len(gold & predicted)
    return Scores.from_counts(tp, len(predicted) - tp, len(gold) - tp)


@dataclass(frozen=True, slots=True)
class Report:
    """Scores of one extractor on one gold file: each level overall and per class."""

    mentions: Scores
    entities: Scores
    relations: Scores
    mentions_by_class: dict[str, Scores]
    entities_by_class: dict[str, Scores]
    relations_by_property: dict[str, Scores]

    def rows(self) -> list[tuple[str, Scores]]:
        """Table rows: each level, then its classes (by local name)."""
        rows: list[tuple[str, Scores]] = []
        for level, total, parts in (
            ("mentions", self.mentions, self.mentions_by_class),
            ("entities", self.entities, self.entities_by_class),
            ("relations", self.relations, self.relations_by_property),
        ):
            rows.append((level, total))
            rows.extend((f"  {_short(key)}", parts[key]) for key in sorted(parts))
        return rows

    def as_json(self) -> dict[str, Any]:
        def one(s: Scores) -> dict[str, float | int]:
            return {"precision": s.precision, "recall": s.recall, "f1": s.f1,
                    "tp": s.tp, "fp": s.fp, "fn": s.fn}  # fmt: skip

        return {
            "mentions": one(self.mentions),
            "entities": one(self.entities),
            "relations": one(self.relations),
            "mentions_by_class": {k: one(v) for k, v in sorted(self.mentions_by_class.items())},
            "entities_by_class": {k: one(v) for k, v in sorted(self.entities_by_class.items())},
            "relations_by_property": {
                k: one(v) for k, v in sorted(self.relations_by_property.items())
            },
        }


async def evaluate_report(
    gold_path: Path | str, extractor: Extractor, index: OntologyIndexLike
) -> Report:
    """Run the extractor on every gold document (one chunk each): mentions, entities, relations."""
    mentions: tuple[set[Any], set[Any]] = (set(), set())
    entities: tuple[set[Any], set[Any]] = (set(), set())
    relations: tuple[set[Any], set[Any]] = (set(), set())
    for number, document in enumerate(load_gold(gold_path)):
        for span in document.spans:
            mentions[0].add((number, span, span[2]))
            name = document.names.get(span) or document.text[span[0] : span[1]]
            entities[0].add((number, normalize_name(name), span[2]))
        for triple in document.relations:
            relations[0].add((number, triple, triple[1]))
        chunk = Chunk(index=0, start=0, end=len(document.text), text=document.text)
        result = await extractor.extract(chunk, index)
        for entity in result.entities:
            if document.named_only and not entity.surface[:1].isupper():
                continue
            if entity.start is not None and entity.end is not None:
                span = (entity.start, entity.end, entity.class_iri)
                mentions[1].add((number, span, entity.class_iri))
            name = entity.surface if entity.name is None else entity.name
            entities[1].add((number, normalize_name(name), entity.class_iri))
        for relation in result.relations:
            subject = relation.subject_key.partition("|")[2]
            obj = relation.object_key if relation.literal else relation.object_key.partition("|")[2]
            triple = (subject, relation.property_iri, normalize_name(obj))
            relations[1].add((number, triple, relation.property_iri))
    return Report(
        _total(*mentions), _total(*entities), _total(*relations),
        _by_group(*mentions), _by_group(*entities), _by_group(*relations),
    )  # fmt: skip


def _total(gold: set[Any], predicted: set[Any]) -> Scores:
    tp = len(gold & predicted)
    return Scores.from_counts(tp, len(predicted) - tp, len(gold) - tp)


def _by_group(gold: set[Any], predicted: set[Any]) -> dict[str, Scores]:
    """Scores per class (or property), for every class the gold or the predictions name."""
    groups = sorted({item[-1] for item in gold | predicted})
    return {
        group: _total({i for i in gold if i[-1] == group}, {i for i in predicted if i[-1] == group})
        for group in groups
    }


def _short(iri: str) -> str:
    return iri.rstrip("/#").rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def format_table(rows: Iterable[tuple[str, Scores]]) -> str:
    """A plain-text table: one row per named result."""
    header = ("", "precision", "recall", "f1", "tp", "fp", "fn")
    body = [
        (
            name,
            f"{s.precision:.3f}",
            f"{s.recall:.3f}",
            f"{s.f1:.3f}",
            str(s.tp),
            str(s.fp),
            str(s.fn),
        )
        for name, s in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _parse_document(raw: Any) -> GoldDocument:
    text = raw["text"]
    if not isinstance(text, str):
        raise TypeError("'text' must be a string")
    spans: set[Span] = set()
    names: dict[Span, str] = {}
    for entity in raw["entities"]:
        start, end, class_iri = entity["start"], entity["end"], entity["class"]
        if not (isinstance(start, int) and isinstance(end, int) and isinstance(class_iri, str)):
            raise TypeError(f"entity {entity!r} needs integer start/end and a string class")
        if not 0 <= start < end <= len(text):
            raise ValueError(f"span {start}..{end} is outside the text")
        surface = entity.get("surface")
        if surface is not None and text[start:end] != surface:
            raise ValueError(f"text[{start}:{end}] is {text[start:end]!r}, not {surface!r}")
        spans.add((start, end, class_iri))
        name = entity.get("entity")
        if name is not None:
            if not isinstance(name, str):
                raise TypeError(f"entity {entity!r}: 'entity' must be a string")
            names[(start, end, class_iri)] = name
    relations: set[tuple[str, str, str]] = set()
    for relation in raw.get("relations", ()):
        subject, prop, obj = relation["subject"], relation["property"], relation["object"]
        if not all(isinstance(v, str) for v in (subject, prop, obj)):
            raise TypeError(f"relation {relation!r} needs string subject, property and object")
        relations.add((normalize_name(subject), prop, normalize_name(obj)))
    named_only = raw.get("scope") == "named"
    return GoldDocument(text, frozenset(spans), names, frozenset(relations), named_only)


def normalize_name(name: str) -> str:
    return " ".join(name.casefold().split())
