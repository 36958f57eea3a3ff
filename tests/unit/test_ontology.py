"""Loading ontologies: formats, labels, properties, hierarchy and the canonical form."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from rdflib import Graph

from genkeep.errors import BadInput, OntologyInvalid
from genkeep.extract.ontology import BASE_IRI, Ontology, load_ontology

EX = "http://example.org/t#"
SMALL_TTL = b"""\
@prefix :     <http://example.org/t#> .
@prefix owl:  <http://www.w3.org/2002/07/owl#> .
@prefix rdf:  <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix xsd:  <http://www.w3.org/2001/XMLSchema#> .

:Place a owl:Class ; rdfs:label "place" .
:City a owl:Class ; rdfs:subClassOf :Place ;
    rdfs:label "city"@en , "Stadt"@de , "ville"@FR ;
    skos:altLabel "town"@en-GB , "  big   town " .
:Capital a rdfs:Class ; rdfs:subClassOf :City ; skos:prefLabel "capital" .
:Agency a owl:Class ; rdfs:label "agency"@EN ;
    rdfs:subClassOf [ a owl:Restriction ; owl:onProperty :runs ; owl:someValuesFrom :Line ] .
:Line a owl:Class ; skos:prefLabel "line" .
:Tram a owl:Class ; rdfs:label "tram" .
:Bus a owl:Class ; rdfs:label "bus" .

:locatedIn a owl:ObjectProperty ; rdfs:label "located in" ;
    rdfs:domain :Place ; rdfs:range :City .
:runs a owl:ObjectProperty ; rdfs:domain :Agency ; rdfs:range :Line .
:uses a owl:ObjectProperty ; rdfs:domain :Agency ;
    rdfs:range [ a owl:Class ; owl:unionOf ( :Tram :Bus ) ] .
:population a owl:DatatypeProperty ; rdfs:domain :City ; rdfs:range xsd:integer .
:note a rdf:Property .
"""


def small() -> Ontology:
    return load_ontology(SMALL_TTL, name="small.ttl")


def reserialize(data: bytes, rdf_format: str) -> bytes:
    graph = Graph()
    graph.parse(data=data, format="turtle")
    return graph.serialize(format=rdf_format, encoding="utf-8")


def sample_ttl() -> bytes:
    return (resources.files("genkeep.extract") / "samples" / "ontology.ttl").read_bytes()


def summary(ontology: Ontology) -> tuple[object, ...]:
    return (dict(ontology.classes), dict(ontology.properties), ontology.content_hash)


@pytest.mark.parametrize("source", [SMALL_TTL, sample_ttl()], ids=["small", "sample"])
def test_turtle_rdfxml_and_jsonld_give_the_same_ontology(source: bytes) -> None:
    turtle = load_ontology(source, fmt="turtle")
    xml = load_ontology(reserialize(source, "xml"), fmt="xml")
    jsonld = load_ontology(reserialize(source, "json-ld"), fmt="json-ld")
    assert summary(xml) == summary(turtle)
    assert summary(jsonld) == summary(turtle)
    assert xml.canonical == turtle.canonical == jsonld.canonical


@pytest.mark.parametrize(
    ("rdf_format", "name"),
    [("turtle", "o.ttl"), ("xml", "o.owl"), ("xml", "o.rdf"), ("json-ld", "o.jsonld")],
)
def test_format_guessed_from_name_and_from_content(rdf_format: str, name: str) -> None:
    data = reserialize(SMALL_TTL, rdf_format)
    expected = small().content_hash
    assert load_ontology(data, name=name).content_hash == expected
    assert load_ontology(data).content_hash == expected  # sniffed


def test_turtle_starting_with_an_iri_is_not_taken_for_xml() -> None:
    data = b"<http://example.org/t#A> a <http://www.w3.org/2002/07/owl#Class> ."
    assert list(load_ontology(data).classes) == [EX + "A"]


def test_content_hash_is_the_sha256_of_sorted_ntriples() -> None:
    ontology = small()
    lines = ontology.canonical.decode().splitlines()
    assert lines == sorted(lines)
    assert len(ontology.content_hash) == 64
    assert load_ontology(SMALL_TTL).content_hash == ontology.content_hash
    changed = SMALL_TTL.replace(b'"capital"', b'"capital city"')
    assert load_ontology(changed).content_hash != ontology.content_hash


@pytest.mark.parametrize("source", [SMALL_TTL, sample_ttl()], ids=["small", "sample"])
def test_canonical_form_reloads_to_the_same_ontology(source: bytes) -> None:
    ontology = load_ontology(source)
    again = load_ontology(ontology.canonical, fmt="nt", name="stored.nt")
    assert again.canonical == ontology.canonical
    assert summary(again) == summary(ontology)


def test_classes_are_owl_and_rdfs_classes_without_anonymous_ones() -> None:
    assert sorted(small().classes) == [
        EX + name for name in ("Agency", "Bus", "Capital", "City", "Line", "Place", "Tram")
    ]


def test_labels_from_rdfs_and_skos_in_english_or_untagged() -> None:
    classes = small().classes
    # "Stadt"@de and "ville"@FR are dropped; en-GB counts as English; whitespace collapses.
    assert classes[EX + "City"].labels == ("big town", "city", "town")
    assert classes[EX + "Capital"].labels == ("capital",)
    assert classes[EX + "Agency"].labels == ("agency",)
    assert small().properties[EX + "locatedIn"].labels == ("located in",)


def test_properties_with_kind_domain_and_range() -> None:
    properties = small().properties
    assert {iri: prop.kind for iri, prop in properties.items()} == {
        EX + "locatedIn": "object",
        EX + "runs": "object",
        EX + "uses": "object",
        EX + "population": "datatype",
        EX + "note": "property",
    }
    assert properties[EX + "locatedIn"].domain == {EX + "Place"}
    assert properties[EX + "locatedIn"].range == {EX + "City"}
    assert properties[EX + "uses"].range == {EX + "Tram", EX + "Bus"}  # owl:unionOf expanded
    assert properties[EX + "note"].domain == frozenset()


def test_subclasses_fit_the_domain_and_range_of_their_superclasses() -> None:
    ontology = small()
    located_in = ontology.properties[EX + "locatedIn"]
    assert ontology.ancestors(EX + "Capital") == {EX + "Capital", EX + "City", EX + "Place"}
    assert ontology.fits(EX + "Capital", located_in.domain)  # Capital < City < Place
    assert ontology.fits(EX + "Capital", located_in.range)
    assert not ontology.fits(EX + "Place", located_in.range)  # a superclass does not fit
    assert not ontology.fits(EX + "Line", located_in.domain)
    assert ontology.fits(EX + "Line", ["http://www.w3.org/2002/07/owl#Thing"])


def test_hierarchy_runs_through_undeclared_classes() -> None:
    data = SMALL_TTL + b":Tram rdfs:subClassOf :Vehicle .\n:Vehicle rdfs:subClassOf :Thing .\n"
    ontology = load_ontology(data)
    assert EX + "Vehicle" not in ontology.classes
    assert ontology.ancestors(EX + "Tram") == {EX + "Tram", EX + "Vehicle", EX + "Thing"}


def test_subclass_cycles_terminate() -> None:
    data = SMALL_TTL + b":Place rdfs:subClassOf :Capital .\n"
    ontology = load_ontology(data)
    assert ontology.ancestors(EX + "Place") == {EX + "Place", EX + "City", EX + "Capital"}


def test_relative_iris_resolve_against_a_fixed_base() -> None:
    data = b"<#A> a <http://www.w3.org/2002/07/owl#Class> ."
    assert list(load_ontology(data, fmt="turtle").classes) == [BASE_IRI + "#A"]


@pytest.mark.parametrize(
    ("data", "fmt", "fragment"),
    [
        (b"@prefix : <http://x/> .\n:a :b", "turtle", "as turtle"),
        (
            b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><oops",
            "xml",
            "as xml",
        ),
        (b'{"@id": "http://x/a", ', "json-ld", "as json-ld"),
        (b'{"@context": "https://schema.org/", "@id": "x"}', "json-ld", "remote JSON-LD"),
        (b"  \n", None, "is empty"),
        (b"<http://x/a> <http://x/b> <http://x/c> .", "turtle", "declares no classes"),
        (SMALL_TTL, "yaml", "unknown ontology format 'yaml'"),
    ],
)
def test_bad_input_is_a_clear_one_line_bad_input(
    data: bytes, fmt: str | None, fragment: str
) -> None:
    with pytest.raises(OntologyInvalid) as caught:
        load_ontology(data, fmt=fmt, name="bad")
    assert isinstance(caught.value, BadInput)
    assert caught.value.status == 422
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_nested_remote_context_is_refused_without_fetching() -> None:
    document = {"@graph": [{"@context": ["http://127.0.0.1:9/ctx.jsonld"], "@id": "x"}]}
    with pytest.raises(OntologyInvalid, match="remote JSON-LD"):
        load_ontology(json.dumps(document).encode(), fmt="jsonld")


@pytest.mark.parametrize(
    ("data", "fmt", "expected"),
    [
        (
            b"@prefix : <http://x/> .\n:A a <http://www.w3.org/2002/07/owl#Class> .\n:B :c ;; :d\n",
            "turtle",
            "as turtle: line 3: objectList expected: :B :c ;; :d",
        ),
        (
            b"<?xml version='1.0'?>\n<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
            b"<oops>\n</rdf:RDF>\n",
            "xml",
            "as xml: line 4: mismatched tag: </rdf:RDF>",
        ),
        (b'{"@context": {},\n "x": ]}', "json-ld", 'as json-ld: line 2: Expecting value: "x": ]}'),
    ],
)
def test_a_parse_error_shows_the_parser_message_and_line_as_text(
    data: bytes, fmt: str, expected: str
) -> None:
    with pytest.raises(OntologyInvalid) as caught:
        load_ontology(data, fmt=fmt, name="bad")
    assert str(caught.value) == f"cannot parse ontology 'bad' {expected}"
    assert "b'" not in str(caught.value)
