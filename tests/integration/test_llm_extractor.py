"""LlmExtractor against a real loopback server speaking the chat completions API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest

from genkeep.errors import ExtractionFailed
from genkeep.extract.llm import extractor as extractor_module
from genkeep.extract.llm.answer import SCHEMA_NAME
from genkeep.extract.llm.extractor import LlmExtractor, MemoryLlmCache, request_key
from genkeep.extract.llm.grounding import locate
from genkeep.extract.model import Alignment, Chunk, Entity, Relation
from tests.support.fake_openai import FakeOpenAI, empty, ok, status

API_KEY = "sk-test-genkeep-llm-5b1d2e3f4a"
MODEL = "gpt-test-extract"
ONTO = "http://example.org/onto#"
PERSON, SCIENTIST, CITY = ONTO + "Person", ONTO + "Scientist", ONTO + "City"
BORN_IN, KNOWS = ONTO + "bornIn", ONTO + "knows"
TEXT = "In 1867 Marie Curie was born in WARSAW.  She later met Pierre\nCurie in Paris."
# The chunk sits at offset 1000 of the original text: offsets come out absolute.
CHUNK = Chunk(index=3, start=1000, end=1000 + len(TEXT), text=TEXT)


class FakeIndex:
    """``OntologyIndexLike``: Scientist ⊑ Person, bornIn: Person → City, knows: Person → Person."""

    def __init__(self) -> None:
        self._labels = {PERSON: ["person", "human"], SCIENTIST: ["scientist"], CITY: ["city"]}
        self._parents = {SCIENTIST: PERSON}
        self._properties = {BORN_IN: (PERSON, CITY), KNOWS: (PERSON, PERSON)}

    def classes_for_label(self, label: str) -> list[str]:
        return sorted(c for c, labels in self._labels.items() if label.casefold() in labels)

    def labels(self) -> list[tuple[str, str]]:
        return sorted((label, c) for c, labels in self._labels.items() for label in labels)

    def properties_between(self, subject_class: str, object_class: str) -> list[str]:
        return sorted(
            prop
            for prop, (domain, range_) in self._properties.items()
            if domain in self._lineage(subject_class) and range_ in self._lineage(object_class)
        )

    def _lineage(self, class_iri: str) -> set[str]:
        lineage = {class_iri}
        while class_iri in self._parents:
            class_iri = self._parents[class_iri]
            lineage.add(class_iri)
        return lineage


RELATION_FIELDS = ("subject", "subject_class", "property", "object", "object_class")


def answer(entities: list[tuple[str, str]], relations: Sequence[tuple[str, ...]] = ()) -> str:
    return json.dumps(
        {
            "entities": [{"surface": s, "class": c} for s, c in entities],
            "relations": [dict(zip(RELATION_FIELDS, r, strict=True)) for r in relations],
        }
    )


VALID = answer(
    [
        ("Marie Curie", SCIENTIST),
        ("Warsaw", CITY),  # the text says WARSAW: a case-insensitive match
        ("Pierre Curie", PERSON),  # a line break in the text: whitespace-insensitive
        ("Paris", CITY),
        ("Atlantis", CITY),  # not in the text: unaligned
    ],
    [
        ("Marie Curie", SCIENTIST, BORN_IN, "Warsaw", CITY),
        ("Marie Curie", SCIENTIST, KNOWS, "Pierre Curie", PERSON),
        ("Warsaw", CITY, BORN_IN, "Marie Curie", SCIENTIST),  # outside domain and range
        ("Marie Curie", SCIENTIST, BORN_IN, "Lyon", CITY),  # Lyon is not among the entities
    ],
)

MakeExtractor = Callable[..., LlmExtractor]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def make_extractor(server: FakeOpenAI) -> AsyncIterator[MakeExtractor]:
    made: list[LlmExtractor] = []

    def make(
        cache: MemoryLlmCache | None = None,
        *,
        model: str = MODEL,
        api_key: str = API_KEY,
        base_url: str | None = None,
        max_attempts: int = 3,
    ) -> LlmExtractor:
        extractor = LlmExtractor(
            model=model,
            cache=cache if cache is not None else MemoryLlmCache(),
            base_url=base_url or server.base_url,
            api_key=api_key,
            timeout_s=2.0,
            max_retries=0,
            max_attempts=max_attempts,
        )
        made.append(extractor)
        return extractor

    yield make
    for extractor in made:
        await extractor.aclose()


def grounded(surface: str, class_iri: str, alignment: Alignment = "exact") -> Entity:
    start = TEXT.index(surface)
    return Entity(class_iri, surface, 1000 + start, 1000 + start + len(surface), alignment)


async def test_a_valid_answer_gives_grounded_entities_and_checked_relations(
    server: FakeOpenAI, make_extractor: MakeExtractor
) -> None:
    server.plan(ok(VALID))
    extractor = make_extractor()

    result = await extractor.extract(CHUNK, FakeIndex())

    marie = grounded("Marie Curie", SCIENTIST)
    warsaw = grounded("WARSAW", CITY, "fuzzy")
    pierre = grounded("Pierre\nCurie", PERSON, "fuzzy")
    assert result.entities == [
        marie,
        warsaw,
        pierre,
        grounded("Paris", CITY),
        Entity(CITY, "Atlantis", None, None, "unaligned"),
    ]
    for entity in result.entities[:4]:
        assert entity.start is not None and entity.end is not None
        assert TEXT[entity.start - 1000 : entity.end - 1000] == entity.surface
    assert result.relations == [
        Relation(BORN_IN, marie.key, warsaw.key, marie.start, warsaw.end),
        Relation(KNOWS, marie.key, pierre.key, marie.start, pierre.end),
    ]
    assert extractor.stats.dropped_relations == 2
    assert extractor.stats.unaligned_entities == 1
    assert (extractor.name, extractor.version) == ("genkeep-llm", "1")


async def test_the_request_asks_for_json_schema_output(
    server: FakeOpenAI, make_extractor: MakeExtractor
) -> None:
    server.plan(ok(VALID))
    await make_extractor().extract(CHUNK, FakeIndex())

    (request,) = server.requests
    body: dict[str, Any] = request.body
    assert body["model"] == MODEL
    assert body["temperature"] == 0
    assert body["messages"][-1] == {"role": "user", "content": TEXT}
    assert f"- {SCIENTIST}: scientist" in body["messages"][0]["content"]
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == SCHEMA_NAME
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert schema["required"] == ["entities", "relations"]
    assert schema["additionalProperties"] is False
    entity = schema["properties"]["entities"]["items"]
    assert entity["properties"]["class"]["enum"] == [CITY, PERSON, SCIENTIST]
    relation = schema["properties"]["relations"]["items"]
    assert relation["properties"]["property"]["enum"] == [BORN_IN, KNOWS]
    assert API_KEY not in json.dumps(body)


async def test_a_cached_answer_makes_no_http_call(
    server: FakeOpenAI, make_extractor: MakeExtractor
) -> None:
    server.plan(ok(VALID))
    cache = MemoryLlmCache()
    first = await make_extractor(cache).extract(CHUNK, FakeIndex())
    assert server.calls == 1

    # A resumed run: a new extractor, the same cache, the same text at another offset.
    moved = Chunk(index=0, start=5, end=5 + len(TEXT), text=TEXT)
    again = make_extractor(cache)
    second = await again.extract(moved, FakeIndex())

    assert server.calls == 1
    assert again.stats.cache_hits == 1
    assert [(e.surface, e.start) for e in second.entities] == [
        (e.surface, None if e.start is None else e.start - 995) for e in first.entities
    ]


@pytest.mark.parametrize(
    "invalid",
    [
        "this is not JSON",
        '{"entities": []}',
        '{"entities": [], "relations": [], "notes": "extra"}',
        answer([("Marie Curie", ONTO + "Unicorn")]),
        answer([("Marie Curie", PERSON)], [("Marie Curie", PERSON, ONTO + "likes", "X", PERSON)]),
        '{"entities": [{"surface": 7, "class": "' + PERSON + '"}], "relations": []}',
    ],
)
async def test_an_invalid_answer_is_retried_and_only_the_valid_one_cached(
    server: FakeOpenAI, make_extractor: MakeExtractor, invalid: str
) -> None:
    server.plan(ok(invalid), ok(VALID))
    cache = MemoryLlmCache()
    extractor = make_extractor(cache)

    result = await extractor.extract(CHUNK, FakeIndex())

    assert server.calls == 2
    assert len(result.entities) == 5
    assert list(cache.answers.values()) == [VALID]
    assert extractor.stats.invalid_answers == 1


async def test_an_empty_answer_is_retried(
    server: FakeOpenAI, make_extractor: MakeExtractor
) -> None:
    server.plan(empty(), ok(VALID))
    result = await make_extractor().extract(CHUNK, FakeIndex())
    assert server.calls == 2
    assert len(result.entities) == 5


async def test_always_invalid_fails_after_max_attempts_and_caches_nothing(
    server: FakeOpenAI, make_extractor: MakeExtractor
) -> None:
    server.plan(*[ok("{not json")] * 5)
    cache = MemoryLlmCache()

    with pytest.raises(ExtractionFailed) as caught:
        await make_extractor(cache, max_attempts=4).extract(CHUNK, FakeIndex())

    assert server.calls == 4
    assert cache.answers == {}
    assert caught.value.code == "extraction-failed"
    assert caught.value.extra["reason"] == "invalid-answer"
    assert "after 4 attempts" in caught.value.detail


async def test_a_server_error_fails_without_leaking_the_key(
    server: FakeOpenAI, make_extractor: MakeExtractor
) -> None:
    server.plan(status(500, message=f"upstream rejected key {API_KEY}"))
    cache = MemoryLlmCache()

    with pytest.raises(ExtractionFailed) as caught:
        await make_extractor(cache).extract(CHUNK, FakeIndex())

    assert server.calls == 1  # transport errors are the SDK's to retry, not ours
    assert caught.value.extra["reason"] == "status"
    assert API_KEY not in caught.value.detail
    assert "[redacted]" in caught.value.detail
    assert cache.answers == {}


async def test_the_cache_key_follows_the_request_not_the_credentials(
    make_extractor: MakeExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = FakeIndex()
    key = make_extractor().cache_key(CHUNK, index)

    assert make_extractor(api_key="sk-other-key").cache_key(CHUNK, index) == key
    assert make_extractor(base_url="http://127.0.0.1:9/v1").cache_key(CHUNK, index) == key
    moved = Chunk(index=9, start=0, end=len(TEXT), text=TEXT)
    assert make_extractor().cache_key(moved, index) == key

    assert make_extractor(model="gpt-other").cache_key(CHUNK, index) != key
    edited = Chunk(index=3, start=1000, end=1000 + len(TEXT), text=TEXT.replace("Paris", "Lyon!"))
    assert make_extractor().cache_key(edited, index) != key
    # The extractor keys with the version it imported.
    monkeypatch.setattr(extractor_module, "PROMPT_TEMPLATE_VERSION", "extract-prompt-next")
    assert make_extractor().cache_key(CHUNK, index) != key


def test_owners_never_share_cached_answers(make_extractor: MakeExtractor) -> None:
    index, extractor = FakeIndex(), make_extractor()
    alice, bob = extractor.for_owner("alice"), extractor.for_owner("bob")
    assert alice.cache_key(CHUNK, index) == extractor.for_owner("alice").cache_key(CHUNK, index)
    assert alice.cache_key(CHUNK, index) != bob.cache_key(CHUNK, index)
    assert extractor.cache_key(CHUNK, index) not in {
        alice.cache_key(CHUNK, index),
        bob.cache_key(CHUNK, index),
    }


def test_request_key_is_canonical() -> None:
    args: dict[str, Any] = {
        "model": MODEL,
        "template_version": "v1",
        "temperature": 0.0,
        "schema": {"b": 1, "a": [1, 2]},
        "messages": [{"role": "user", "content": "text"}],
    }
    key = request_key(**args)
    assert key == request_key(**{**args, "schema": {"a": [1, 2], "b": 1}})
    assert key != request_key(**{**args, "template_version": "v2"})
    assert key != request_key(**{**args, "temperature": None})


@pytest.mark.parametrize(
    ("surface", "found", "alignment"),
    [
        ("Curie", "Curie", "exact"),
        ("curie", "Curie", "fuzzy"),
        ("warsaw", "WARSAW", "fuzzy"),
        ("Pierre Curie", "Pierre\nCurie", "fuzzy"),
        ("arie", "arie", "exact"),  # only inside a word: accepted last
    ],
)
def test_locate_prefers_exact_then_ignores_case_and_spacing(
    surface: str, found: str, alignment: str
) -> None:
    start = TEXT.index(found)
    assert locate(TEXT, surface) == (start, start + len(found), alignment)


@pytest.mark.parametrize("surface", ["Lyon", "   ", "Curie-Skłodowska"])
def test_locate_gives_none_for_what_the_text_lacks(surface: str) -> None:
    assert locate(TEXT, surface) is None
