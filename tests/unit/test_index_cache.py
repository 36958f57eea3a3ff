"""The derived ontology index and its cache by content hash (I10)."""

from __future__ import annotations

import logging

import pytest
from rdflib import Graph

from genkeep.extract.index import IndexCache, OntologyIndex
from genkeep.extract.model import OntologyIndexLike
from genkeep.extract.ontology import Ontology, load_ontology

EX = "http://example.org/t#"
PREFIXES = b"""\
@prefix :     <http://example.org/t#> .
@prefix owl:  <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
"""
TRANSPORT = (
    PREFIXES
    + b"""
:Place a owl:Class ; rdfs:label "place" .
:Stop a owl:Class ; rdfs:subClassOf :Place ; rdfs:label "stop" .
:Station a owl:Class ; rdfs:subClassOf :Stop ; rdfs:label "station" ;
    skos:altLabel "interchange" , "Hub" .
:Line a owl:Class ; rdfs:label "line" ; skos:altLabel "route" .
:BusLine a owl:Class ; rdfs:subClassOf :Line ; rdfs:label "bus line" .
:Agency a owl:Class ; rdfs:label "agency" ; skos:altLabel "IT" .
:serves a owl:ObjectProperty ; rdfs:domain :Line ; rdfs:range :Stop .
:operates a owl:ObjectProperty ; rdfs:domain :Agency ; rdfs:range :Line .
:near a owl:ObjectProperty ; rdfs:domain :Place ; rdfs:range :Place .
:comment a owl:ObjectProperty .
"""
)
ANIMALS = (
    PREFIXES
    + b"""
:Animal a owl:Class ; rdfs:label "animal" .
:Cat a owl:Class ; rdfs:subClassOf :Animal ; rdfs:label "cat" .
"""
)


def transport(name: str = "transport.ttl") -> Ontology:
    return load_ontology(TRANSPORT, name=name)


def animals() -> Ontology:
    return load_ontology(ANIMALS, name="animals.ttl")


def test_index_implements_the_extractor_protocol() -> None:
    index: OntologyIndexLike = OntologyIndex(transport())
    assert index.classes_for_label("station") == [EX + "Station"]


def test_labels_lists_every_label_and_synonym() -> None:
    assert OntologyIndex(transport()).labels() == [
        ("Hub", EX + "Station"),
        ("IT", EX + "Agency"),
        ("agency", EX + "Agency"),
        ("bus line", EX + "BusLine"),
        ("interchange", EX + "Station"),
        ("line", EX + "Line"),
        ("place", EX + "Place"),
        ("route", EX + "Line"),
        ("station", EX + "Station"),
        ("stop", EX + "Stop"),
    ]


def test_classes_for_label_follows_the_case_rule() -> None:
    index = OntologyIndex(transport())
    assert index.classes_for_label("Station") == [EX + "Station"]
    assert index.classes_for_label("HUB") == [EX + "Station"]  # "Hub" is not all capitals
    assert index.classes_for_label("bus   line") == [EX + "BusLine"]
    assert index.classes_for_label("IT") == [EX + "Agency"]
    assert index.classes_for_label("it") == []  # an acronym keeps its case
    assert index.classes_for_label("tram") == []


def test_properties_between_honours_subclasses() -> None:
    index = OntologyIndex(transport())
    assert index.properties_between(EX + "Line", EX + "Stop") == [EX + "serves"]
    assert index.properties_between(EX + "BusLine", EX + "Station") == [EX + "serves"]
    assert index.properties_between(EX + "Agency", EX + "BusLine") == [EX + "operates"]
    assert index.properties_between(EX + "Station", EX + "Place") == [EX + "near"]
    assert index.properties_between(EX + "Stop", EX + "Line") == []  # direction matters
    assert index.properties_between(EX + "Place", EX + "Station") == [EX + "near"]
    assert index.properties_between(EX + "Line", EX + "Place") == []  # superclass: no fit
    assert index.properties_between(EX + "Unknown", EX + "Stop") == []


def test_hit_returns_the_same_index() -> None:
    cache = IndexCache()
    first = cache.get(transport())
    assert cache.get(transport()) is first
    assert (cache.hits, cache.misses, cache.collisions, len(cache)) == (1, 1, 0, 1)


def test_the_same_ontology_in_another_format_is_a_hit() -> None:
    cache = IndexCache()
    first = cache.get(transport())
    graph = Graph()
    graph.parse(data=TRANSPORT, format="turtle")
    as_xml = load_ontology(graph.serialize(format="xml", encoding="utf-8"), name="t.owl")
    assert cache.get(as_xml) is first


def test_hit_is_verified_against_the_stored_canonical_ontology() -> None:
    cache = IndexCache(hash_fn=lambda data: "same")
    first = cache.get(transport("a.ttl"))
    # Equal content under another name: verification passes, the cached index is served.
    assert cache.get(transport("b.ttl")) is first
    assert cache.collisions == 0


def test_forced_collision_is_logged_recomputed_and_never_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = IndexCache(hash_fn=lambda data: "0")
    transport_index = cache.get(transport())
    with caplog.at_level(logging.WARNING, logger="genkeep.extract.index"):
        animals_index = cache.get(animals())
    assert cache.collisions == 1
    assert animals_index is not transport_index
    assert animals_index.classes_for_label("cat") == [EX + "Cat"]
    assert animals_index.classes_for_label("station") == []
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "collision" in record.getMessage()
    assert "transport.ttl" in record.getMessage()
    assert "animals.ttl" in record.getMessage()

    # Both stay cached side by side: each is served its own index, with no new collision.
    assert cache.get(transport()) is transport_index
    assert cache.get(animals()) is animals_index
    assert transport_index.classes_for_label("station") == [EX + "Station"]
    assert (cache.collisions, len(cache)) == (1, 2)


def test_each_colliding_ontology_counts_once() -> None:
    cache = IndexCache(hash_fn=lambda data: "0")
    cache.get(transport())
    cache.get(animals())
    third = load_ontology(ANIMALS + b':Dog a owl:Class ; rdfs:label "dog" .\n', name="dogs")
    assert cache.get(third).classes_for_label("dog") == [EX + "Dog"]
    assert cache.collisions == 2
    assert len(cache) == 3


def test_least_recently_used_entries_are_dropped() -> None:
    cache = IndexCache(max_entries=1)
    first = cache.get(transport())
    cache.get(animals())
    assert len(cache) == 1
    assert cache.get(transport()) is not first  # recomputed after eviction
    with pytest.raises(ValueError, match="max_entries"):
        IndexCache(max_entries=0)
