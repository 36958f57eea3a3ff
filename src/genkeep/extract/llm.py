"""The LLM extractor: one chat completion per chunk, answered as JSON matching a schema.

Each answer is checked (JSON, the schema, the ontology), its surfaces are located in the
chunk, and relations outside their property's domain or range are dropped. Invalid answers
are asked again, up to ``max_attempts`` times. Valid answers, and only those, are cached by
the sha256 of the request (never of a key or URL), so a resumed run does not pay twice.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from genkeep.config import Settings
from genkeep.errors import ConfigurationError, ExtractionFailed
from genkeep.extract.dedupe import unique_mentions, unique_relations
from genkeep.extract.model import Alignment, Chunk, ChunkResult, Entity, OntologyIndexLike, Relation

if TYPE_CHECKING:
    # The SDK takes a second of CPU to import: a worker or server that never calls an LLM
    # extractor should not pay it at start-up (it is imported where a client is built).
    from openai.types.chat import ChatCompletionMessageParam
    from openai.types.shared_params import ResponseFormatJSONSchema

log = logging.getLogger(__name__)

# Change it whenever the prompt's wording changes: it is part of every cache key.
PROMPT_TEMPLATE_VERSION = "extract-prompt-1"
SCHEMA_NAME = "genkeep_extraction"

_SYSTEM_TEMPLATE = """\
You extract entities and relations from a text to build a knowledge graph, using only \
the ontology below.

Classes (IRI: labels):
{classes}

Properties (IRI):
{properties}

Rules:
- "surface" is the entity's words copied exactly as they appear in the text.
- Use only the class and property IRIs listed above.
- A relation links two entities of your "entities" list, named by surface and class.
- List every entity and relation the text states; answer with empty lists if there are none.
"""


class LlmCache(Protocol):
    """Valid LLM answers by request key."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, answer: str) -> None: ...


class MemoryLlmCache:
    """An ``LlmCache`` in a dict: tests, and one-off runs."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.answers.get(key)

    async def put(self, key: str, answer: str) -> None:
        self.answers[key] = answer


@dataclass(slots=True)
class LlmStats:
    """Running totals of one extractor, for logs and tests."""

    requests: int = 0
    cache_hits: int = 0
    invalid_answers: int = 0
    unaligned_entities: int = 0
    dropped_entities: int = 0
    dropped_relations: int = 0


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What the prompt and schema offer: the index's classes (with labels) and properties."""

    classes: dict[str, tuple[str, ...]]
    properties: tuple[str, ...]

    @classmethod
    def of(cls, index: OntologyIndexLike) -> Vocabulary:
        labels: dict[str, set[str]] = {}
        for label, class_iri in index.labels():
            labels.setdefault(class_iri, set()).add(label)
        # The index lists properties only per class pair: once per index, not per chunk.
        properties = {
            prop
            for subject in labels
            for obj in labels
            for prop in index.properties_between(subject, obj)
        }
        return cls(
            classes={iri: tuple(sorted(labels[iri])) for iri in sorted(labels)},
            properties=tuple(sorted(properties)),
        )

    def schema(self) -> dict[str, Any]:
        class_enum = {"type": "string", "enum": list(self.classes)}
        prop = {"type": "string", "enum": list(self.properties)} if self.properties else {}
        relation = _object(
            subject={"type": "string"},
            subject_class=class_enum,
            property=prop or {"type": "string"},
            object={"type": "string"},
            object_class=class_enum,
        )
        relations: dict[str, Any] = {"type": "array", "items": relation}
        if not self.properties:
            relations["maxItems"] = 0
        entity = _object(surface={"type": "string"}, **{"class": class_enum})
        return _object(entities={"type": "array", "items": entity}, relations=relations)

    def system_prompt(self) -> str:
        classes = "\n".join(f"- {iri}: {', '.join(labels)}" for iri, labels in self.classes.items())
        properties = "\n".join(f"- {iri}" for iri in self.properties) or "(none)"
        return _SYSTEM_TEMPLATE.format(classes=classes, properties=properties)


def request_key(
    *,
    model: str,
    template_version: str,
    temperature: float | None,
    schema: dict[str, Any],
    messages: Sequence[ChatCompletionMessageParam],
    owner: str | None = None,
) -> str:
    """sha256 of everything that shapes the answer, and of its owner, as canonical JSON."""
    material = {
        # Owners never share answers: a hit would tell one owner what another has sent.
        "owner": owner,
        "extractor": f"{LlmExtractor.name}/{LlmExtractor.version}",
        "model": model,
        "template": template_version,
        "temperature": temperature,
        "schema": schema,
        "messages": list(messages),
    }
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class LlmExtractor:
    """An ``Extractor`` over any OpenAI-compatible chat API with structured outputs.

    Transport failures are retried by the SDK (``max_retries``); invalid answers by this
    class (``max_attempts`` requests in all), after which ``ExtractionFailed`` is raised.
    """

    name: str = "genkeep-llm"
    version: str = "1"

    def __init__(
        self,
        *,
        model: str,
        cache: LlmCache,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        max_attempts: int = 3,
        temperature: float | None = 0.0,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, not {max_attempts}")
        self.model = model
        self.temperature = temperature
        self.max_attempts = max_attempts
        self.stats = LlmStats()
        self.owner: str | None = None
        self._cache = cache
        self._vocabulary: tuple[OntologyIndexLike, Vocabulary] | None = None
        from genkeep.generate.openai_client import ChatClient

        self._chat = ChatClient(
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            who="LLM",
            purpose="the LLM extractor",
            error=ExtractionFailed,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, model: str, cache: LlmCache, max_attempts: int = 3
    ) -> LlmExtractor:
        key = settings.openai_api_key
        return cls(
            model=model,
            cache=cache,
            base_url=settings.openai_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
            max_attempts=max_attempts,
        )

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        vocabulary = self._vocabulary_of(index)
        if not vocabulary.classes:
            return ChunkResult()
        schema = vocabulary.schema()
        messages = self._messages(vocabulary, chunk)
        key = self._key(schema, messages)
        cached = await self._cache.get(key)
        if cached is not None:
            try:
                result = self._read(cached, chunk, index, vocabulary, schema)
            except _InvalidAnswer as exc:
                log.warning("ignoring a cached LLM answer that is no longer valid: %s", exc)
            else:
                self.stats.cache_hits += 1
                return result
        problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            try:
                answer = await self._complete(messages, schema)
                result = self._read(answer, chunk, index, vocabulary, schema)
            except _InvalidAnswer as exc:
                self.stats.invalid_answers += 1
                problem = str(exc)
                log.warning(
                    "chunk %d: invalid LLM answer (attempt %d of %d): %s",
                    chunk.index,
                    attempt,
                    self.max_attempts,
                    problem,
                )
                continue
            await self._cache.put(key, answer)
            return result
        raise ExtractionFailed(
            f"no valid answer for chunk {chunk.index} after {self.max_attempts} attempts: "
            f"{problem}",
            reason="invalid-answer",
            attempts=self.max_attempts,
        )

    def for_owner(self, owner_id: str) -> LlmExtractor:
        """A view whose cached answers are the owner's own (same client, same statistics)."""
        scoped = copy.copy(self)
        scoped.owner = owner_id
        return scoped

    def cache_key(self, chunk: Chunk, index: OntologyIndexLike) -> str:
        """The key this chunk's answer is cached under."""
        vocabulary = self._vocabulary_of(index)
        return self._key(vocabulary.schema(), self._messages(vocabulary, chunk))

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._chat.aclose()

    def _key(self, schema: dict[str, Any], messages: list[ChatCompletionMessageParam]) -> str:
        return request_key(
            model=self.model,
            template_version=PROMPT_TEMPLATE_VERSION,
            temperature=self.temperature,
            schema=schema,
            messages=messages,
            owner=self.owner,
        )

    def _vocabulary_of(self, index: OntologyIndexLike) -> Vocabulary:
        if self._vocabulary is None or self._vocabulary[0] is not index:
            self._vocabulary = (index, Vocabulary.of(index))
        return self._vocabulary[1]

    @staticmethod
    def _messages(vocabulary: Vocabulary, chunk: Chunk) -> list[ChatCompletionMessageParam]:
        return [
            {"role": "system", "content": vocabulary.system_prompt()},
            {"role": "user", "content": chunk.text},
        ]

    async def _complete(
        self, messages: list[ChatCompletionMessageParam], schema: dict[str, Any]
    ) -> str:
        from openai import omit

        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema},
        }
        self.stats.requests += 1
        completion = await self._chat.complete(
            model=self.model,
            messages=messages,
            response_format=response_format,
            temperature=self.temperature if self.temperature is not None else omit,
        )
        return _content(completion)

    def _read(
        self,
        answer: str,
        chunk: Chunk,
        index: OntologyIndexLike,
        vocabulary: Vocabulary,
        schema: dict[str, Any],
    ) -> ChunkResult:
        try:
            data = json.loads(answer)
        except ValueError as exc:
            raise _InvalidAnswer(f"not JSON ({exc})") from None
        errors = schema_errors(data, schema)
        if errors:
            raise _InvalidAnswer(f"does not match the schema: {errors[0]}")
        grounded = _ground(data["entities"], chunk, vocabulary)
        self.stats.unaligned_entities += sum(e.alignment == "unaligned" for e in grounded.values())
        self.stats.dropped_entities += sum(not e["surface"].strip() for e in data["entities"])
        relations: list[Relation] = []
        for item in data["relations"]:
            subject = grounded.get((item["subject_class"], _words(item["subject"])))
            obj = grounded.get((item["object_class"], _words(item["object"])))
            prop = item["property"]
            if (
                subject is None
                or obj is None
                or prop not in vocabulary.properties
                or prop not in index.properties_between(subject.class_iri, obj.class_iri)
            ):
                self.stats.dropped_relations += 1
                continue
            relations.append(_relation(prop, subject, obj))
        return ChunkResult(unique_mentions(grounded.values()), unique_relations(relations))


class _InvalidAnswer(Exception):
    """An answer that must be asked again; never cached."""


def _content(completion: Any) -> str:
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise ExtractionFailed("LLM's answer is not a chat completion", reason="bad-body")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if isinstance(content, str) and content.strip():
        return content
    # An empty answer or a refusal is worth another attempt, like an invalid one.
    refused = "refused, " if getattr(message, "refusal", None) else ""
    finish = str(getattr(choices[0], "finish_reason", None))[:40]
    raise _InvalidAnswer(f"empty answer ({refused}finish_reason={finish})")


def _ground(
    items: list[dict[str, str]], chunk: Chunk, vocabulary: Vocabulary
) -> dict[tuple[str, str], Entity]:
    """The answer's entities located in the chunk, by (class, whitespace-normalized surface).

    A surface listed twice is grounded once: one mention per entity and chunk.
    """
    found: dict[tuple[str, str], Entity] = {}
    for item in items:
        class_iri, surface = item["class"], " ".join(item["surface"].split())
        if not surface or class_iri not in vocabulary.classes:
            continue
        ident = (class_iri, _words(surface))
        if ident in found:
            continue
        located = locate(chunk.text, surface)
        if located is None:
            found[ident] = Entity(class_iri, surface, None, None, "unaligned")
            continue
        start, end, alignment = located
        found[ident] = Entity(
            class_iri, chunk.text[start:end], chunk.start + start, chunk.start + end, alignment
        )
    return found


def locate(text: str, surface: str) -> tuple[int, int, Alignment] | None:
    """First occurrence of ``surface`` in ``text``: exact, else ignoring case and spacing.

    Whole-word occurrences are preferred; a match inside a longer word comes last (scripts
    without spaces have no word boundaries).
    """
    words = surface.split()
    if not words:
        return None
    exact = re.escape(surface)
    loose = r"\s+".join(re.escape(word) for word in words)
    attempts: tuple[tuple[str, int, Alignment], ...] = (
        (_whole_word(exact, surface), 0, "exact"),
        (exact, 0, "exact"),
        (_whole_word(loose, surface), re.IGNORECASE, "fuzzy"),
        (loose, re.IGNORECASE, "fuzzy"),
    )
    for pattern, flags, alignment in attempts:
        match = re.search(pattern, text, flags)
        if match is not None:
            return match.start(), match.end(), alignment
    return None


def _whole_word(pattern: str, surface: str) -> str:
    before = r"(?<!\w)" if re.match(r"\w", surface) else ""
    after = r"(?!\w)" if re.search(r"\w$", surface) else ""
    return before + pattern + after


def _words(surface: str) -> str:
    return " ".join(surface.casefold().split())


def _relation(prop: str, subject: Entity, obj: Entity) -> Relation:
    spans = [(e.start, e.end) for e in (subject, obj) if e.start is not None and e.end is not None]
    aligned = len(spans) == 2
    return Relation(
        prop,
        subject.key,
        obj.key,
        min(s for s, _ in spans) if aligned else None,
        max(e for _, e in spans) if aligned else None,
    )


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    """A strict-mode JSON-schema object: every property required, no others allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema``: the JSON-schema subset strict structured outputs use
    (type, properties, required, additionalProperties, items, enum, minItems, maxItems).
    """
    kind = schema.get("type")
    if isinstance(kind, str) and not _has_type(value, kind):
        return [f"{path} is not of type {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path} is not an allowed value: {json.dumps(value)[:80]}"]
    errors: list[str] = []
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        errors += [
            f"{path} lacks {name!r}" for name in schema.get("required", ()) if name not in value
        ]
        if schema.get("additionalProperties") is False:
            errors += [
                f"{path} has unexpected {name!r}" for name in value if name not in properties
            ]
        for name, subschema in properties.items():
            if name in value:
                errors += schema_errors(value[name], subschema, f"{path}.{name}")
    elif isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path} has more than {schema['maxItems']} items")
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path} has fewer than {schema['minItems']} items")
        if "items" in schema:
            for position, item in enumerate(value):
                errors += schema_errors(item, schema["items"], f"{path}[{position}]")
    return errors


def _has_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number", "boolean") and isinstance(value, bool):
        return kind == "boolean"
    expected = _JSON_TYPES.get(kind)
    return expected is not None and isinstance(value, expected)


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}
