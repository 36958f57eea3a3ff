"""Validating a merged graph against its ontology: classes, properties, domains and ranges."""

from __future__ import annotations

import io

import pytest
from rdflib import Graph

from genkeep.errors import BadInput
from genkeep.extract.merge import TURTLE_HEADER, BatchResult, Merger
from genkeep.extract.model import Entity, Relation
from genkeep.extract.validate import validate_graph

ONTOLOGY = b"""
@prefix : <http://example.org/onto#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

:Agent a owl:Class .
:Person a owl:Class ; rdfs:subClassOf :Agent .
:Scientist a owl:Class ; rdfs:subClassOf :Person .
:Organization a owl:Class ; rdfs:subClassOf :Agent .
:Place a owl:Class .
:City a owl:Class ; rdfs:subClassOf :Place .

:bornIn a owl:ObjectProperty ; rdfs:domain :Person ; rdfs:range :Place .
:employs a owl:ObjectProperty ;
    rdfs:domain [ a owl:Class ; owl:unionOf ( :Organization :City ) ] ;
    rdfs:range :Person .
:hires a owl:ObjectProperty ; rdfs:subPropertyOf :employs .
:knows a owl:ObjectProperty ; rdfs:domain owl:Thing ; rdfs:range owl:Thing .
:population a owl:DatatypeProperty ; rdfs:domain :City ; rdfs:range xsd:integer .
"""
PREFIXES = b"""
@prefix : <http://example.org/onto#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix e: <urn:genkeep:run:r/entity/> .
"""
ONTO = "http://example.org/onto#"


def check(body: bytes) -> list[str]:
    report = validate_graph(PREFIXES + body, ONTOLOGY)
    assert report.conforms == (report.problems == [])
    return report.problems


def test_a_conforming_graph_honours_subclasses() -> None:
    assert (
        check(b"""
        e:marie a :Scientist ; rdfs:label "Marie Curie" .
        e:warsaw a :City ; rdfs:label "Warsaw" ; :population 1800000 .
        e:acme a :Organization .
        e:marie :bornIn e:warsaw ; :knows e:acme .
        e:acme :hires e:marie .
        e:warsaw :employs e:marie .
    """)
        == []
    )


def test_a_class_the_ontology_lacks_is_reported() -> None:
    assert check(b"e:nessie a :Monster .") == [
        "<urn:genkeep:run:r/entity/nessie> has class <http://example.org/onto#Monster>, "
        "not in the ontology"
    ]


def test_a_domain_violation_is_reported() -> None:
    assert check(b"e:paris a :City . e:warsaw a :City . e:paris :bornIn e:warsaw .") == [
        "<urn:genkeep:run:r/entity/paris> uses <http://example.org/onto#bornIn> "
        "but is not a <http://example.org/onto#Person> (domain)"
    ]


def test_a_range_violation_is_reported() -> None:
    assert check(b"e:marie a :Person . e:pierre a :Person . e:marie :bornIn e:pierre .") == [
        "<urn:genkeep:run:r/entity/marie> <http://example.org/onto#bornIn> "
        "<urn:genkeep:run:r/entity/pierre>: the value is not a <http://example.org/onto#Place> "
        "(range)"
    ]


def test_union_domains_and_super_property_constraints_apply() -> None:
    problems = check(b"""
        e:marie a :Person . e:pierre a :Person .
        e:pierre :hires e:marie .
        e:marie :employs e:pierre .
    """)
    union = "<http://example.org/onto#City> or <http://example.org/onto#Organization>"
    assert problems == [
        f"<urn:genkeep:run:r/entity/marie> uses <http://example.org/onto#employs> "
        f"but is not a {union} (domain)",
        f"<urn:genkeep:run:r/entity/pierre> uses <http://example.org/onto#hires> "
        f"but is not a {union} (domain)",
    ]


def test_an_untyped_endpoint_and_a_wrong_literal_are_violations() -> None:
    problems = check(b'e:ghost :bornIn e:warsaw . e:warsaw a :City ; :population "many" .')
    assert len(problems) == 2
    assert "entity/ghost> uses <http://example.org/onto#bornIn>" in problems[0]
    assert (
        "population> 'many': the value is not a <http://www.w3.org/2001/XMLSchema#integer>"
        in (problems[1])
    )


def test_a_property_the_ontology_lacks_is_reported() -> None:
    assert check(b"e:marie a :Person . e:marie :likes e:marie .") == [
        "property <http://example.org/onto#likes> is not in the ontology"
    ]


def test_a_graph_that_does_not_parse_does_not_conform() -> None:
    report = validate_graph(b"<urn:a> <urn:b> ", ONTOLOGY)
    assert not report.conforms
    assert report.problems[0].startswith("graph does not parse as Turtle")


def test_a_bad_ontology_is_bad_input() -> None:
    with pytest.raises(BadInput):
        validate_graph(TURTLE_HEADER, b"this is not turtle <")


def test_the_ontology_may_be_a_graph_and_problems_are_capped() -> None:
    ontology = Graph().parse(data=ONTOLOGY, format="turtle")
    body = b"".join(b"e:x%d a :Monster%d . " % (n, n) for n in range(5))
    report = validate_graph(PREFIXES + body, ontology, max_problems=3)
    assert not report.conforms
    assert len(report.problems) == 4
    assert report.problems[-1] == "… and 2 more"


def test_the_merger_output_validates() -> None:
    turtle = io.BytesIO()
    merger = Merger("urn:genkeep:run:r", turtle=turtle)
    marie = Entity(ONTO + "Scientist", "Marie Curie", 0, 11)
    warsaw = Entity(ONTO + "City", "Warsaw", 24, 30)
    merger.add_batch(
        BatchResult(
            0, 0, [marie, warsaw], [Relation(ONTO + "bornIn", marie.key, warsaw.key, 0, 30)]
        )
    )
    merger.finish()
    assert validate_graph(turtle.getvalue(), ONTOLOGY).problems == []
    assert validate_graph(TURTLE_HEADER, ONTOLOGY).conforms  # an empty run's graph
