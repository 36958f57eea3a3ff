"""The built-in extractor: grounded offsets, tokenization, case rule, relations, chunks."""

from __future__ import annotations

from importlib import resources

import pytest

from genkeep.extract.builtin import BuiltinExtractor, sentence_starts
from genkeep.extract.index import LabelMatcher, OntologyIndex
from genkeep.extract.model import Chunk, ChunkResult, Extractor, OntologyIndexLike
from genkeep.extract.ontology import load_ontology

EX = "http://example.org/t#"
ONTOLOGY = """\
@prefix :     <http://example.org/t#> .
@prefix owl:  <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .

:Place a owl:Class ; rdfs:label "place" .
:City a owl:Class ; rdfs:subClassOf :Place ;
    rdfs:label "city" , "New York City" , "New York" , "York" , "Zürich" , "São Paulo" , "Москва" .
:Country a owl:Class ; rdfs:subClassOf :Place ; rdfs:label "country" ; skos:altLabel "US" .
:Department a owl:Class ; rdfs:label "department" ; skos:altLabel "IT" .
:Animal a owl:Class ; rdfs:label "cat" .
:Cafe a owl:Class ; rdfs:subClassOf :Place ; rdfs:label "cafe" .
:Stop a owl:Class ; rdfs:subClassOf :Place ; rdfs:label "stop" .
:BusStop a owl:Class ; rdfs:subClassOf :Stop ; rdfs:label "bus stop" .
:Bus a owl:Class ; rdfs:label "bus" .
:Line a owl:Class ; rdfs:label "line" .
:Vehicle a owl:Class ; rdfs:label "vehicle" .
:Tram a owl:Class ; rdfs:subClassOf :Vehicle ; rdfs:label "tram" .

:locatedIn a owl:ObjectProperty ; rdfs:domain :Place ; rdfs:range :City .
:serves a owl:ObjectProperty ; rdfs:domain :Line ; rdfs:range :Stop .
:runsOn a owl:ObjectProperty ; rdfs:domain :Vehicle ; rdfs:range :Line .
"""

INDEX = OntologyIndex(load_ontology(ONTOLOGY.encode(), name="t.ttl"))


async def extract(text: str, start: int = 0, index: OntologyIndexLike = INDEX) -> ChunkResult:
    chunk = Chunk(index=0, start=start, end=start + len(text), text=text)
    return await BuiltinExtractor().extract(chunk, index)


async def found(text: str) -> list[tuple[str, str]]:
    """(surface, class local name) of every entity."""
    return [(e.surface, e.class_iri.removeprefix(EX)) for e in (await extract(text)).entities]


async def relations(text: str) -> list[tuple[str, str, str]]:
    return [
        (r.subject_key.split("|")[1], r.property_iri.removeprefix(EX), r.object_key.split("|")[1])
        for r in (await extract(text)).relations
    ]


def test_it_is_an_extractor() -> None:
    extractor: Extractor = BuiltinExtractor()
    assert (extractor.name, extractor.version) == ("genkeep-builtin", "1")


async def test_every_entity_is_grounded_in_the_original_text() -> None:
    samples = resources.files("genkeep.extract") / "samples"
    sample_index = OntologyIndex(load_ontology((samples / "ontology.ttl").read_bytes()))
    text = (samples / "text.md").read_text(encoding="utf-8")
    source = "preamble that is not part of the chunk\n" + text
    start = len(source) - len(text)
    result = await extract(text, start, sample_index)
    assert len(result.entities) > 60
    for entity in result.entities:
        assert entity.start is not None and entity.end is not None
        assert source[entity.start : entity.end] == entity.surface
        assert entity.alignment == "exact"
    assert result.relations


@pytest.mark.parametrize(
    "text",
    ["concatenate", "bobcat", "cats", "cat_food", "the tramway", "2cat", "cat\u0301"],
)
async def test_no_match_inside_words(text: str) -> None:
    assert await found(text) == []


async def test_labels_at_punctuation_and_text_edges() -> None:
    assert await found("cat") == [("cat", "Animal")]
    assert await found("(cat), 'tram'; bus-stop") == [
        ("cat", "Animal"),
        ("tram", "Tram"),
        ("bus", "Bus"),  # "bus-stop" is not the label "bus stop"
        ("stop", "Stop"),
    ]


async def test_multi_word_labels_across_spaces_and_one_line_break() -> None:
    assert await found("the bus stop") == [("bus stop", "BusStop")]
    assert await found("the bus  \n stop") == [("bus  \n stop", "BusStop")]
    # A blank line separates paragraphs: no label spans it.
    assert await found("the bus\n\nstop") == [("bus", "Bus"), ("stop", "Stop")]


async def test_longest_match_wins_when_labels_overlap() -> None:
    assert await found("New York City") == [("New York City", "City")]
    assert await found("New York is big") == [("New York", "City")]
    assert await found("in York") == [("York", "City")]
    assert await found("New York Cityscape") == [("New York", "City")]


async def test_unicode_words() -> None:
    assert await found("Zürich and São Paulo") == [("Zürich", "City"), ("São Paulo", "City")]
    assert await found("ZÜRICH") == [("ZÜRICH", "City")]
    assert await found("в москва") == [("москва", "City")]
    assert await found("Zürichsee") == []  # a Unicode letter continues the word
    assert await found("cafe\u0301") == []  # so does a combining accent
    assert await found("Москвы") == []


async def test_case_insensitive_words_but_exact_acronyms() -> None:
    assert await found("City CITY city") == [("City", "City"), ("CITY", "City"), ("city", "City")]
    assert await found("the US and the IT department") == [
        ("US", "Country"),
        ("IT", "Department"),
        ("department", "Department"),
    ]
    assert await found("let us see it, Us, It") == []


def test_a_wrong_case_acronym_falls_back_to_a_shorter_label() -> None:
    matcher = LabelMatcher([("York", "A"), ("YORK TIMES", "B")])
    text = "york times; YORK TIMES"
    assert [(text[m.start : m.end], m.classes) for m in matcher.find(text)] == [
        ("york", ("A",)),
        ("YORK TIMES", ("B",)),
    ]


async def test_a_label_of_several_classes_gives_one_entity_per_class() -> None:
    index = OntologyIndex(
        load_ontology(ONTOLOGY.encode() + b':Pet a owl:Class ; rdfs:label "cat" .')
    )
    result = await extract("a cat", index=index)
    assert [(e.class_iri, e.start) for e in result.entities] == [
        (EX + "Animal", 2),
        (EX + "Pet", 2),
    ]
    assert result.relations == []


async def test_relations_when_domain_and_range_fit_including_subclasses() -> None:
    assert await relations("The bus stop is in New York.") == [
        ("bus stop", "locatedIn", "new york")  # BusStop < Stop < Place
    ]
    assert await relations("The tram runs on the line to the bus stop.") == [
        ("tram", "runsOn", "line"),  # Tram < Vehicle
        ("line", "serves", "bus stop"),
    ]
    assert await relations("The bus and the line.") == []  # Bus is no Vehicle here
    assert await relations("The department in York.") == []  # Department is no Place


async def test_subject_comes_before_object() -> None:
    assert await relations("New York has a stop.") == []
    assert await relations("A stop in New York.") == [("stop", "locatedIn", "new york")]


async def test_relations_stay_within_one_sentence() -> None:
    assert await relations("Here is a stop. It is in York.") == []
    assert await relations("Here is a stop!\nYork is near.") == []
    assert await relations("A stop\n\nYork") == []
    assert await relations("- a stop\n- York") == []
    # Abbreviations and initials do not end a sentence.
    assert await relations("A stop on St. Mary Rd. in York.") == [("stop", "locatedIn", "york")]
    assert await relations("A stop named for J. Smith in York.") == [("stop", "locatedIn", "york")]


async def test_one_relation_per_subject_property_object() -> None:
    result = await extract("The stop in York, the stop in York, the Stop in york.")
    assert [(r.property_iri, r.subject_key, r.object_key) for r in result.relations] == [
        (EX + "locatedIn", EX + "Stop|stop", EX + "City|york")
    ]
    assert (result.relations[0].start, result.relations[0].end) == (4, 16)


def test_sentence_starts() -> None:
    text = "One. Two? e.g. three\n\nFour\n# Five. six"
    starts = sentence_starts(text)
    pieces = [text[a:b].strip() for a, b in zip([0, *starts], [*starts, len(text)], strict=True)]
    assert pieces == ["One.", "Two? e.g. three", "Four", "# Five. six"]


async def test_the_same_entity_via_overlapping_chunks_has_the_same_offsets() -> None:
    source = "A tram left New York City at noon and reached the bus stop near Zürich by one."
    first = Chunk(index=0, start=0, end=62, text=source[:62])
    second = Chunk(index=1, start=33, end=len(source), text=source[33:])
    extractor = BuiltinExtractor()
    a = (await extractor.extract(first, INDEX)).entities
    b = (await extractor.extract(second, INDEX)).entities
    shared = set(a) & set(b)
    assert {(e.surface, e.start, e.end) for e in shared} == {("bus stop", 50, 58)}
    for entity in [*a, *b]:
        assert entity.start is not None and entity.end is not None
        assert source[entity.start : entity.end] == entity.surface


async def test_results_are_deterministic() -> None:
    text = "The tram runs on the line to the bus stop in York. The stop in New York City, US."
    first = await extract(text, 7)
    again = await extract(text, 7)
    fresh_index = OntologyIndex(load_ontology(ONTOLOGY.encode()))
    fresh = await extract(text, 7, fresh_index)
    assert first == again == fresh
    assert [e.start for e in first.entities] == sorted(e.start or 0 for e in first.entities)


class PlainIndex:
    """Another OntologyIndexLike, not an OntologyIndex."""

    def classes_for_label(self, label: str) -> list[str]:
        return INDEX.classes_for_label(label)

    def labels(self) -> list[tuple[str, str]]:
        return INDEX.labels()

    def properties_between(self, subject_class: str, object_class: str) -> list[str]:
        return INDEX.properties_between(subject_class, object_class)


async def test_any_index_implementation_works() -> None:
    text = "A stop in York and IT."
    assert await extract(text, index=PlainIndex()) == await extract(text)
