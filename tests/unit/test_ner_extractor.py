"""The ner extractor on spaCy's small English pipeline (loaded once for the module): names
typed by the ontology, short names merged, values, cued relations, and its scores on the
evaluation sets of benchmarks/eval against the builtin extractor's."""

from __future__ import annotations

from pathlib import Path

import pytest

from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.evaluate import Report, evaluate_report
from genkeep.extract.index import OntologyIndex
from genkeep.extract.model import Chunk, ChunkResult
from genkeep.extract.ner.extractor import NerExtractor
from genkeep.extract.ner.pipeline import available
from genkeep.extract.ner.relations import path_between
from genkeep.extract.ontology import load_ontology
from genkeep.extract.runner import encode_result

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "benchmarks" / "eval"
SAMPLES = REPO / "src" / "genkeep" / "extract" / "samples"
FOAF = "http://xmlns.com/foaf/0.1/"
SCHEMA = "https://schema.org/"
CITY = "http://example.org/genkeep/city#"


def index_of(path: Path) -> OntologyIndex:
    return OntologyIndex(load_ontology(path.read_bytes(), name=path.name))


@pytest.fixture(scope="module")
def ner() -> NerExtractor:
    # Installed by `make test` (requirements/ner-model.txt): missing, these tests fail.
    assert available("en_core_web_sm"), "the en_core_web_sm pipeline is not installed"
    extractor = NerExtractor()
    extractor.nlp  # noqa: B018 - load once, here
    return extractor


def extract(ner: NerExtractor, text: str, ontology: Path) -> ChunkResult:
    return ner.extract_now(Chunk(0, 0, len(text), text), index_of(ontology))


def named(result: ChunkResult) -> dict[str, tuple[str, str | None]]:
    return {
        f"{e.surface}@{e.start}": (e.class_iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1], e.name)
        for e in result.entities
        if e.surface[:1].isupper()
    }


def test_a_named_mention_wins_over_the_class_word(ner: NerExtractor) -> None:
    text = "Varnholm is a mid-sized city on the coast."
    result = extract(ner, text, SAMPLES / "ontology.ttl")
    assert named(result)["Varnholm@0"] == ("City", None)
    # The class word stays, as the builtin extractor gives it.
    assert any(e.surface == "city" and e.class_iri == CITY + "City" for e in result.entities)


def test_short_names_are_the_full_name_mentioned_before(ner: NerExtractor) -> None:
    text = (
        "Maria Okafor founded the project in Lisbon. Two years later Maria moved to Porto, "
        "and Okafor still lives there."
    )
    result = extract(ner, text, EVAL / "foaf" / "ontology.ttl")
    people = {e.surface: e for e in result.entities if e.class_iri == FOAF + "Person"}
    assert people["Maria"].name == people["Okafor"].name == "Maria Okafor"
    assert people["Maria"].key == people["Maria Okafor"].key


def test_urls_and_mail_addresses_are_values_of_properties_that_say_so(ner: NerExtractor) -> None:
    text = (
        "Lindenhof Press sells its books at https://press.example.com and office@press.example.com."
    )
    result = extract(ner, text, EVAL / "schema" / "ontology.ttl")
    values = {(r.property_iri, r.object_key, r.literal) for r in result.relations}
    press = "https://schema.org/Organization|lindenhof press"
    assert {(r.subject_key) for r in result.relations} == {press}
    assert (SCHEMA + "url", "https://press.example.com", True) in values
    assert (SCHEMA + "email", "office@press.example.com", True) in values
    # FOAF's homepage is an object property whose range is a Document: the page is one.
    text = "Maria Okafor keeps her homepage at https://okafor.example.org today."
    result = extract(ner, text, EVAL / "foaf" / "ontology.ttl")
    [page] = [e for e in result.entities if e.surface == "https://okafor.example.org"]
    assert page.class_iri == FOAF + "Document"
    [homepage] = [r for r in result.relations if r.property_iri == FOAF + "homepage"]
    assert homepage.object_key == page.key and not homepage.literal


def test_relations_need_a_cue_when_the_property_is_open(ner: NerExtractor) -> None:
    foaf = EVAL / "foaf" / "ontology.ttl"
    result = extract(ner, "Maria Okafor and Tomás Ferreira know each other.", foaf)
    [knows] = result.relations
    assert (knows.property_iri, knows.cue) == (FOAF + "knows", "know")
    assert knows.subject_key.endswith("|maria okafor")
    # foaf:fundedBy links any two things: only a word of the text may use it.
    result = extract(ner, "Maria Okafor visited the Gulbenkian Foundation in May.", foaf)
    assert [r.property_iri for r in result.relations] == []
    result = extract(ner, "OpenTide is funded by the Gulbenkian Foundation.", foaf)
    assert [(r.property_iri, r.cue) for r in result.relations if r.cue] in (
        [(FOAF + "fundedBy", "fund")],
        [],  # only if the model misses the project's name
    )
    # Two conjuncts are related only by a reciprocal verb.
    result = extract(ner, "TideWatch was made by Priya Raman and Lucía Vega.", foaf)
    assert not [r for r in result.relations if r.property_iri == FOAF + "knows"]


def by_surface(result: ChunkResult) -> dict[str, tuple[str, str | None]]:
    """Each capitalized surface's (class local name, name), from its first mention."""
    found: dict[str, tuple[str, str | None]] = {}
    for e in sorted(result.entities, key=lambda e: e.start or 0):
        if e.surface[:1].isupper():
            found.setdefault(e.surface, (e.class_iri.rsplit("/", 1)[-1], e.name))
    return found


def triples(result: ChunkResult) -> set[tuple[str, str, str]]:
    return {
        (r.subject_key.partition("|")[2], r.property_iri.rsplit("/", 1)[-1],
         r.object_key.partition("|")[2])
        for r in result.relations
    }  # fmt: skip


def test_kind_words_type_names_and_short_forms_join_them(ner: NerExtractor) -> None:
    text = (
        "The river flows through the canton of Valais and enters the lake near the village "
        "of Le Bouveret. It ends in the Mediterranean Sea. Ships sail from the Mediterranean "
        "to Lyon. The Marine Biological Association studies the fish."
    )
    found = by_surface(extract(ner, text, EVAL / "geo" / "ontology.ttl"))
    assert found["Valais"] == ("Region", None)  # a canton is a region
    assert found["Le Bouveret"] == ("Settlement", None)  # a village is a settlement
    assert found["Mediterranean Sea"] == ("BodyOfWater", None)  # a sea is a body of water
    assert found["Mediterranean"] == ("BodyOfWater", "Mediterranean Sea")
    assert found["Marine Biological Association"] == ("Organisation", None)


def test_a_name_keeps_its_own_kind(ner: NerExtractor) -> None:
    text = (
        "Bergen, a city on the coast, is home to the University of Bergen. Vienna is the "
        "capital of Austria. Maja Berg was born in Tromsø and met Ingrid Solberg at the "
        "Bergen Book Festival."
    )
    found = by_surface(extract(ner, text, EVAL / "schema" / "ontology.ttl"))
    assert found["Bergen"] == ("City", None)
    # Headed by "University", not by "Bergen"; "the capital of" says nothing of Austria.
    assert found["University of Bergen"] == ("EducationalOrganization", None)
    assert found["Austria"] == ("Country", None)
    assert found["Tromsø"][0] in ("City", "Place")  # whoever was born was born somewhere
    assert found["Bergen Book Festival"] == ("Event", None)


def test_references_stand_for_the_nearest_name_that_fits(ner: NerExtractor) -> None:
    geo = EVAL / "geo" / "ontology.ttl"
    text = (
        "Geneva sits at the western end of the lake. The city is home to many organisations. "
        "Its mayor, Christina Kitsos, often speaks of the lake."
    )
    assert ("geneva", "mayor", "christina kitsos") in triples(extract(ner, text, geo))
    text = (
        "The Rhône is a river of Europe. For most of its length the river belongs to "
        "Switzerland, and it ends in the Mediterranean Sea."
    )
    relations = triples(extract(ner, text, geo))
    assert ("rhône", "riverMouth", "mediterranean sea") in relations
    # "she": the person before, even one no sentence was about.
    text = (
        "Seedbank started in 2018 as a side project of Jana Novotná, a biologist who worked "
        "at the Charles University in Prague. She met Omar Haddad at a workshop in Lyon."
    )
    relations = triples(extract(ner, text, EVAL / "foaf" / "ontology.ttl"))
    assert ("jana novotná", "knows", "omar haddad") in relations


def test_a_path_stays_within_its_mention_and_its_clause(ner: NerExtractor) -> None:
    from spacy.tokens import Doc

    # "X and Y, which has its seat in Z": the relative clause is Y's, not X's.
    words = ["X", "and", "Y", ",", "which", "has", "its", "seat", "in", "Z"]
    heads = [0, 0, 0, 2, 5, 2, 7, 5, 7, 8]
    deps = ["ROOT", "cc", "conj", "punct", "nsubj", "relcl", "poss", "dobj", "prep", "pobj"]
    doc = Doc(ner.nlp.vocab, words=words, heads=heads, deps=deps)
    assert [t.text for t in path_between(doc[2], doc[9]) or []] == ["in", "seat", "has"]
    assert path_between(doc[0], doc[9]) is None
    # "A belongs to B, and it ends in C": two clauses, two subjects; no path from B to C.
    words = ["A", "belongs", "to", "B", "and", "it", "ends", "in", "C"]
    heads = [1, 1, 1, 2, 1, 6, 1, 6, 7]
    deps = ["nsubj", "ROOT", "prep", "pobj", "cc", "nsubj", "conj", "prep", "pobj"]
    tags = ["NNP", "VBZ", "IN", "NNP", "CC", "PRP", "VBZ", "IN", "NNP"]
    doc = Doc(ner.nlp.vocab, words=words, heads=heads, deps=deps, tags=tags)
    assert path_between(doc[3], doc[8]) is None
    assert path_between(doc[0], doc[3]) is not None
    # A path through another name is that name's ("X works at Y in Z": X is not in Z).
    words = ["X", "works", "at", "Y", "in", "Z"]
    heads = [1, 1, 1, 2, 3, 4]
    deps = ["nsubj", "ROOT", "prep", "pobj", "prep", "pobj"]
    doc = Doc(ner.nlp.vocab, words=words, heads=heads, deps=deps)
    assert path_between(doc[0], doc[5], frozenset({3})) is None
    assert path_between(doc[3], doc[5], frozenset({0})) == [doc[4]]


def test_an_open_range_is_narrowed_by_the_property_name(ner: NerExtractor) -> None:
    # foaf:currentProject ranges over owl:Thing; its name says a project: no organization.
    text = "Tomás Ferreira works at the Fraunhofer Society, where he leads a small team."
    relations = triples(extract(ner, text, EVAL / "foaf" / "ontology.ttl"))
    assert not [t for t in relations if t[1] == "currentProject"]


def test_the_same_chunk_gives_the_same_bytes(ner: NerExtractor) -> None:
    text = (EVAL / "schema" / "text.md").read_text()[:1200]
    index = index_of(EVAL / "schema" / "ontology.ttl")
    chunk = Chunk(3, 100, 100 + len(text), text)
    first = encode_result(chunk.start, ner.extract_now(chunk, index))
    assert encode_result(chunk.start, NerExtractor().extract_now(chunk, index)) == first


async def scores(extractor: object, folder: str) -> Report:
    gold = EVAL / folder / "gold.jsonl"
    return await evaluate_report(gold, extractor, index_of(EVAL / folder / "ontology.ttl"))  # type: ignore[arg-type]


# Floors a little under the scores measured when the sets were written (docs/extract.md has
# the tables): a change that makes the extractor worse on an unseen ontology fails here.
@pytest.mark.parametrize(
    ("folder", "mentions", "entities", "relations"),
    [("foaf", 0.88, 0.88, 0.8), ("schema", 0.88, 0.87, 0.7), ("geo", 0.88, 0.84, 0.6)],
)
async def test_scores_on_unseen_ontologies(
    ner: NerExtractor, folder: str, mentions: float, entities: float, relations: float
) -> None:
    report = await scores(ner, folder)
    builtin = await scores(BuiltinExtractor(), folder)
    assert report.mentions.f1 >= mentions and report.mentions.f1 > builtin.mentions.f1 + 0.3
    assert report.entities.f1 >= entities
    assert report.relations.f1 >= relations and report.relations.f1 > builtin.relations.f1
    # The goals: people, organizations and places 0.75 at entity level.
    assert kinds_f1(report) >= 0.75


async def test_a_held_out_text_keeps_its_first_scores(ner: NerExtractor) -> None:
    # benchmarks/eval/rhine was written after the rules and scored once, not tuned on:
    # floors under that first measurement (docs/extract.md), not the goals.
    report = await scores(ner, "rhine")
    assert report.mentions.f1 >= 0.72 and report.entities.f1 >= 0.66
    assert report.relations.f1 >= 0.35 and kinds_f1(report) >= 0.68


KINDS = ("Person", "Organization", "Organisation", "EducationalOrganization", "Place", "City",
         "Country", "Region", "SpatialThing", "District")  # fmt: skip


def kinds_f1(report: Report) -> float:
    """Entity-level F1 over the person, organization and place classes (as extract_eval.py)."""
    tp = fp = fn = 0
    for iri, s in report.entities_by_class.items():
        if iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1] in KINDS:
            tp, fp, fn = tp + s.tp, fp + s.fp, fn + s.fn
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


async def test_the_shipped_sample_scores_do_not_drop(ner: NerExtractor) -> None:
    index = index_of(SAMPLES / "ontology.ttl")
    for gold in ("gold.jsonl", "gold_named.jsonl"):
        report = await evaluate_report(SAMPLES / gold, ner, index)
        builtin = await evaluate_report(SAMPLES / gold, BuiltinExtractor(), index)
        assert report.mentions.f1 >= builtin.mentions.f1, gold
        assert report.mentions.recall >= builtin.mentions.recall, gold
