"""The ner extractor's entity-type mapping (no spaCy needed): automatic rules, the mapping
file, the record a run keeps; and the validation of relations no word supports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import Graph

from genkeep.errors import BadInput, ConfigurationError
from genkeep.extract.ner import kinds as kind_words
from genkeep.extract.ner.mapping import Mapping, automatic, read_overrides, with_overrides
from genkeep.extract.ontology import load_ontology
from genkeep.extract.validate import open_properties, uncued_problems

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "benchmarks" / "eval"
SAMPLES = REPO / "src" / "genkeep" / "extract" / "samples"
FOAF = "http://xmlns.com/foaf/0.1/"
SCHEMA = "https://schema.org/"
DBO = "http://dbpedia.org/ontology/"
CITY = "http://example.org/genkeep/city#"


def ontology(path: Path):  # type: ignore[no-untyped-def]
    return load_ontology(path.read_bytes(), name=path.name)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            EVAL / "foaf" / "ontology.ttl",
            {"PERSON": FOAF + "Person", "ORG": FOAF + "Organization",
             "GPE": "http://www.w3.org/2003/01/geo/wgs84_pos#SpatialThing", "PRODUCT": None},
        ),
        (
            EVAL / "schema" / "ontology.ttl",
            {"PERSON": SCHEMA + "Person", "ORG": SCHEMA + "Organization", "GPE": SCHEMA + "City",
             "GPE_COUNTRY": SCHEMA + "Country", "ORG_EDUCATION": SCHEMA + "EducationalOrganization",
             "EVENT": SCHEMA + "Event", "WORK_OF_ART": SCHEMA + "CreativeWork"},
        ),
        (
            EVAL / "geo" / "ontology.ttl",
            {"PERSON": DBO + "Person", "ORG": DBO + "Organisation", "GPE": DBO + "City",
             "GPE_COUNTRY": DBO + "Country", "LOC": DBO + "Place"},
        ),
        (
            SAMPLES / "ontology.ttl",
            {"PERSON": CITY + "Person", "ORG": CITY + "Organization", "GPE": CITY + "City",
             "GPE_COUNTRY": CITY + "City"},
        ),
    ],
    ids=["foaf", "schema", "dbpedia", "sample"],
)  # fmt: skip
def test_types_map_to_the_class_their_labels_name(source: Path, expected: dict[str, str]) -> None:
    mapping = automatic(ontology(source))
    for entity_type, class_iri in expected.items():
        assert mapping.class_for(entity_type) == class_iri, entity_type


def test_a_subclass_inherits_its_superclass_mapping_only_as_a_candidate() -> None:
    mapping = automatic(ontology(SAMPLES / "ontology.ttl"))
    # Mayor is a kind of Person: chosen by a class word in context, never by default.
    assert CITY + "Mayor" in mapping.candidates["PERSON"]
    assert mapping.class_for("PERSON") == CITY + "Person"
    # "city council" holds "city" but is not a kind of place.
    assert CITY + "CityCouncil" not in mapping.candidates["GPE"]


def test_the_mapping_file_overrides_by_iri_or_local_name_and_drops_by_null(
    tmp_path: Path,
) -> None:
    foaf = ontology(EVAL / "foaf" / "ontology.ttl")
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"org": "Group", "PRODUCT": FOAF + "Project", "PERSON": None}))
    mapping = with_overrides(automatic(foaf), read_overrides(path), foaf)
    assert mapping.class_for("ORG") == FOAF + "Group"
    assert mapping.class_for("PRODUCT") == FOAF + "Project"
    assert mapping.class_for("PERSON") is None
    assert Mapping.from_record(json.loads(json.dumps(mapping.record()))) == mapping
    with pytest.raises(BadInput, match="'Nope'"):
        with_overrides(automatic(foaf), {"ORG": "Nope"}, foaf)


@pytest.mark.parametrize("content", ["not json", '["PERSON"]', '{"PERSON": 3}'])
def test_a_bad_mapping_file_is_a_configuration_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match="ner mapping file"):
        read_overrides(path)


def test_relations_without_a_cue_on_open_properties_are_problems() -> None:
    graph = Graph().parse(EVAL / "foaf" / "ontology.ttl")
    open_props = open_properties(graph)
    assert FOAF + "currentProject" in open_props  # range owl:Thing
    assert FOAF + "knows" not in open_props  # Person to Person
    uncued = {
        FOAF + "currentProject": (4, [(FOAF + "Person|maria", FOAF + "Project|group")]),
        FOAF + "knows": (2, [(FOAF + "Person|maria", FOAF + "Person|aiko")]),
    }
    [problem] = uncued_problems(uncued, open_props)
    assert problem.startswith(f"4 relation(s) <{FOAF}currentProject> have no cue")
    assert "'maria' → 'group'" in problem


def test_kind_words_name_the_class_they_are_a_kind_of_in_each_ontology() -> None:
    geo = kind_words.resolve(ontology(EVAL / "geo" / "ontology.ttl"))
    assert geo.of("village") == DBO + "Settlement"  # no village class: what a village is
    assert geo.of("canton") == DBO + "Region"
    assert geo.of("sea") == geo.of("seas") == DBO + "BodyOfWater"
    assert geo.of("glacier") == DBO + "NaturalPlace"
    assert geo.of("designer") == DBO + "Person"
    assert geo.of("designer", in_name=True) is None  # "John Painter" is no painter
    foaf = kind_words.resolve(ontology(EVAL / "foaf" / "ontology.ttl"))
    assert foaf.of("society") == FOAF + "Organization"
    assert foaf.of("village") is None  # no class a village is a kind of
