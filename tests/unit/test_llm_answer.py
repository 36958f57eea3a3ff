"""The LLM answer's pydantic model accepts exactly what the schema sent to the LLM allows."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from genkeep.extract.llm.answer import InvalidAnswer, Vocabulary, read_answer

ONTO = "http://example.org/onto#"
PERSON, CITY, BORN_IN = ONTO + "Person", ONTO + "City", ONTO + "bornIn"
VOCABULARY = Vocabulary({PERSON: ("person",), CITY: ("city",)}, (BORN_IN,))
NO_PROPERTIES = Vocabulary({PERSON: ("person",)}, ())

VALID: dict[str, Any] = {
    "entities": [{"surface": "Marie", "class": PERSON}, {"surface": "Paris", "class": CITY}],
    "relations": [
        {
            "subject": "Marie",
            "subject_class": PERSON,
            "property": BORN_IN,
            "object": "Paris",
            "object_class": CITY,
        }
    ],
}
# Values of every JSON type, and strings the vocabulary does not offer.
REPLACEMENTS: tuple[Any, ...] = (None, True, 7, 1.5, "x", ONTO + "Unicorn", [], {})


def variants(value: Any) -> Iterator[Any]:
    """``value`` with one change: a value replaced, a key dropped or added, an item added."""
    yield from REPLACEMENTS
    if isinstance(value, dict):
        for key in value:
            dropped = {k: v for k, v in value.items() if k != key}
            yield dropped
            for changed in variants(value[key]):
                yield {**value, key: changed}
        yield {**value, "notes": "extra"}
    if isinstance(value, list):
        for position, item in enumerate(value):
            for changed in variants(item):
                yield [*value[:position], changed, *value[position + 1 :]]
        if value:
            yield [*value, copy.deepcopy(value[0])]


def accepted(text: str, vocabulary: Vocabulary) -> bool:
    try:
        read_answer(text, vocabulary)
    except InvalidAnswer:
        return False
    return True


@pytest.mark.parametrize("vocabulary", [VOCABULARY, NO_PROPERTIES], ids=["properties", "none"])
def test_the_model_accepts_what_the_wire_schema_allows(vocabulary: Vocabulary) -> None:
    schema = Draft202012Validator(vocabulary.schema())
    start = VALID if vocabulary.properties else {**VALID, "relations": [], "entities": []}
    cases = [start, *variants(start)]
    if not vocabulary.properties:
        cases += [*variants(VALID)]
    both = {True: 0, False: 0}
    for case in cases:
        expected = schema.is_valid(case)
        assert accepted(json.dumps(case), vocabulary) is expected, case
        both[expected] += 1
    # The cases reach both verdicts, many times each.
    assert both[True] >= 2 and both[False] >= 50


SCHEMA = "does not match the schema: "


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("this is not JSON", "not JSON ("),
        ('{"entities": []}', SCHEMA + "$.relations: Field required"),
        (
            '{"entities": [{"surface": 7, "class": "' + PERSON + '"}], "relations": []}',
            SCHEMA + "$.entities[0].surface: Input should be a valid string",
        ),
        (
            '{"entities": [{"surface": "M", "class": "' + CITY + 'x"}], "relations": []}',
            SCHEMA + "$.entities[0].class: Value error, not a class of the ontology",
        ),
    ],
)
def test_a_refusal_says_where_the_answer_breaks_the_schema(text: str, problem: str) -> None:
    with pytest.raises(InvalidAnswer) as refused:
        read_answer(text, VOCABULARY)
    assert str(refused.value).startswith(problem)


def test_an_accepted_answer_keeps_the_entities_and_relations() -> None:
    answer = read_answer(json.dumps(VALID), VOCABULARY)
    assert [(e.surface, e.class_iri) for e in answer.entities] == [
        ("Marie", PERSON),
        ("Paris", CITY),
    ]
    assert [(r.subject, r.property, r.object) for r in answer.relations] == [
        ("Marie", BORN_IN, "Paris")
    ]
