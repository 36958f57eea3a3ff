"""Span-level scoring against gold annotations."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from genkeep.errors import BadInput
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.evaluate import Scores, evaluate, format_table, load_gold, score
from genkeep.extract.index import OntologyIndex
from genkeep.extract.model import Chunk, ChunkResult, Entity, OntologyIndexLike
from genkeep.extract.ontology import load_ontology

DOC_1 = "Ann met Bob in Paris."
DOC_2 = "Paris is big."


class FixedExtractor:
    """Returns set entities per document text, whatever the index."""

    name = "fixed"
    version = "0"

    def __init__(self, by_text: dict[str, list[Entity]]) -> None:
        self.by_text = by_text

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        return ChunkResult(entities=self.by_text.get(chunk.text, []))

    def for_owner(self, owner_id: str) -> FixedExtractor:
        return self


class NoIndex:
    def classes_for_label(self, label: str) -> list[str]:
        return []

    def labels(self) -> list[tuple[str, str]]:
        return []

    def properties_between(self, subject_class: str, object_class: str) -> list[str]:
        return []


def write_gold(path: Path, documents: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in documents), encoding="utf-8")
    return path


def entity(text: str, start: int, end: int, class_iri: str) -> Entity:
    return Entity(class_iri, text[start:end], start, end)


@pytest.fixture
def gold(tmp_path: Path) -> Path:
    return write_gold(
        tmp_path / "gold.jsonl",
        [
            {
                "text": DOC_1,
                "entities": [
                    {"start": 0, "end": 3, "class": "Person", "surface": "Ann"},
                    {"start": 8, "end": 11, "class": "Person", "surface": "Bob"},
                    {"start": 15, "end": 20, "class": "City", "surface": "Paris"},
                ],
            },
            {"text": DOC_2, "entities": [{"start": 0, "end": 5, "class": "City"}]},
        ],
    )


async def test_scores_on_a_hand_made_gold_set(gold: Path) -> None:
    extractor = FixedExtractor(
        {
            DOC_1: [
                entity(DOC_1, 0, 3, "Person"),  # correct
                entity(DOC_1, 0, 3, "Person"),  # the same prediction again: counted once
                entity(DOC_1, 8, 11, "City"),  # right span, wrong class
                entity(DOC_1, 15, 19, "City"),  # wrong span ("Pari")
                Entity("City", "Lyon", None, None, alignment="unaligned"),  # ignored
            ],
            DOC_2: [entity(DOC_2, 0, 5, "City")],  # correct
        }
    )
    scores = await evaluate(gold, extractor, NoIndex())
    # By hand: predictions {Ann/Person, Bob/City, Pari/City, Paris/City (doc 2)};
    # gold {Ann/Person, Bob/Person, Paris/City, Paris/City (doc 2)}.
    # tp = 2, fp = 2, fn = 2; precision = recall = 2/4; f1 = 0.5.
    assert scores == Scores(precision=0.5, recall=0.5, f1=0.5, tp=2, fp=2, fn=2)


async def test_a_span_counts_only_in_its_own_document(gold: Path) -> None:
    # "Paris" at 0..5 is gold in document 2 only; predicting it in document 1 is wrong.
    extractor = FixedExtractor({DOC_1: [Entity("City", "Ann m", 0, 5)]})
    scores = await evaluate(gold, extractor, NoIndex())
    assert (scores.tp, scores.fp, scores.fn) == (0, 1, 4)
    assert (scores.precision, scores.recall, scores.f1) == (0.0, 0.0, 0.0)


def test_score_edge_cases() -> None:
    assert score([(0, 3, "A")], [(0, 3, "A"), (4, 6, "B"), (7, 9, "A")]) == Scores(
        precision=1 / 3, recall=1.0, f1=0.5, tp=1, fp=2, fn=0
    )
    assert score([(0, 3, "A")], []) == Scores(1.0, 0.0, 0.0, 0, 0, 1)  # nothing predicted
    assert score([], []) == Scores(1.0, 1.0, 1.0, 0, 0, 0)


@pytest.mark.parametrize(
    ("entities", "fragment"),
    [
        ([{"start": 0, "end": 99, "class": "A"}], "outside the text"),
        ([{"start": 3, "end": 3, "class": "A"}], "outside the text"),
        ([{"start": 0, "end": 3, "class": "A", "surface": "Bob"}], "not 'Bob'"),
        ([{"start": "0", "end": 3, "class": "A"}], "integer start/end"),
        ([{"start": 0, "end": 3}], "'class'"),
    ],
)
def test_bad_gold_is_refused_with_its_line(
    tmp_path: Path, entities: list[dict[str, object]], fragment: str
) -> None:
    path = write_gold(tmp_path / "bad.jsonl", [{"text": DOC_2, "entities": []}])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": DOC_1, "entities": entities}) + "\n")
    with pytest.raises(BadInput, match=f"bad.jsonl:2: .*{fragment}"):
        load_gold(path)


def test_format_table() -> None:
    table = format_table([("builtin", Scores(0.5, 0.25, 1 / 3, 1, 1, 3))])
    assert table.splitlines() == [
        "         precision  recall     f1  tp  fp  fn",
        "builtin      0.500   0.250  0.333   1   1   3",
    ]


async def test_builtin_extractor_on_the_sample_gold() -> None:
    samples = resources.files("genkeep.extract") / "samples"
    index = OntologyIndex(load_ontology((samples / "ontology.ttl").read_bytes()))
    gold_path = Path(str(samples / "gold.jsonl"))
    documents = load_gold(gold_path)  # validates every annotated surface
    assert len(documents) >= 2
    assert sum(len(doc.spans) for doc in documents) >= 40
    scores = await evaluate(gold_path, BuiltinExtractor(), index)
    # Pronouns, plurals and names are missed; a verb "stop" or "project" is a false hit.
    assert (scores.tp, scores.fp, scores.fn) == (40, 4, 16)
