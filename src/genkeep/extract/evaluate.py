"""Span-level scores of an extractor against gold annotations.

Gold is JSON Lines, one document a line:
``{"text": "...", "entities": [{"start": 4, "end": 16, "class": "<iri>", "surface": "..."}]}``
(``surface`` is optional; when given it must equal ``text[start:end]``). A prediction is
correct when its (start, end, class) equals a gold span's; duplicates count once. Scores
are micro-averaged over all documents. With no predictions precision is 1.0, with no gold
spans recall is 1.0; F1 is 0.0 when both are 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genkeep.errors import BadInput
from genkeep.extract.model import Chunk, Extractor, OntologyIndexLike

Span = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class GoldDocument:
    text: str
    spans: frozenset[Span]


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
    return GoldDocument(text, frozenset(spans))
