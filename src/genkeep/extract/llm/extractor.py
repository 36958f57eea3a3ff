"""The LLM extractor: one chat completion per chunk, answered as JSON matching a schema.

Each answer is checked (JSON, the schema, the ontology), its surfaces are located in the
chunk, and relations outside their property's domain or range are dropped. Invalid answers
are asked again, up to ``max_attempts`` times. Valid answers, and only those, are cached by
the sha256 of the request (never of a key or URL), so a resumed run does not pay twice;
a miss is asked under single flight (``flight``), so workers asking at once pay once.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genkeep.config import Settings
from genkeep.errors import ConfigurationError, ExtractionFailed
from genkeep.extract.limits import NoProviderLimit, ProviderLimit, estimated_tokens
from genkeep.extract.llm.answer import (
    PROMPT_TEMPLATE_VERSION,
    SCHEMA_NAME,
    InvalidAnswer,
    Vocabulary,
    read_answer,
)
from genkeep.extract.llm.flight import LlmCache as LlmCache
from genkeep.extract.llm.flight import MemoryLlmCache as MemoryLlmCache
from genkeep.extract.llm.flight import leading
from genkeep.extract.llm.grounding import ground
from genkeep.extract.model import Chunk, ChunkResult, OntologyIndexLike
from genkeep.telemetry.genai import ModelCall, model_call

if TYPE_CHECKING:
    # The SDK takes a second of CPU to import: a worker or server that never calls an LLM
    # extractor should not pay it at start-up (it is imported where a client is built).
    from openai.types.chat import ChatCompletionMessageParam
    from openai.types.shared_params import ResponseFormatJSONSchema

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LlmStats:
    """Running totals of one extractor, for logs and tests."""

    requests: int = 0
    cache_hits: int = 0
    waited: int = 0  # answers another extractor's call brought (single flight)
    invalid_answers: int = 0
    unaligned_entities: int = 0
    dropped_entities: int = 0
    dropped_relations: int = 0


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
        limit: ProviderLimit | None = None,
        flight_lease_s: float = 30.0,
        flight_poll_s: float = 0.05,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, not {max_attempts}")
        self.model = model
        self.temperature = temperature
        self.max_attempts = max_attempts
        self.stats = LlmStats()
        self.owner: str | None = None
        self.limit: ProviderLimit = limit or NoProviderLimit()
        self.flight_lease_s, self.flight_poll_s = flight_lease_s, flight_poll_s
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
        cls,
        settings: Settings,
        *,
        model: str,
        cache: LlmCache,
        max_attempts: int = 3,
        limit: ProviderLimit | None = None,
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
            limit=limit,
            # A dead worker's call is asked again once its lease ends, as its batch is.
            flight_lease_s=settings.extract_lease_s,
        )

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        vocabulary = self._vocabulary_of(index)
        if not vocabulary.classes:
            return ChunkResult()
        schema = vocabulary.schema()
        messages = self._messages(vocabulary, chunk)
        key = self._key(schema, messages)
        token, waited = str(uuid.uuid4()), False
        while True:
            cached, flying = await self._cache.lookup(key)
            if cached is not None:
                try:
                    result = self._read(cached, chunk, index, vocabulary)
                except InvalidAnswer as exc:
                    if not waited:  # once, not at each poll of a wait
                        log.warning("ignoring a cached LLM answer no longer valid: %s", exc)
                else:
                    self.stats.cache_hits += 1
                    self.stats.waited += waited
                    return result
            if not flying and await self._cache.claim(key, token, self.flight_lease_s):
                break
            waited = True
            await asyncio.sleep(self.flight_poll_s)
        async with leading(self._cache, key, token, self.flight_lease_s):
            return await self._ask(key, messages, schema, chunk, index, vocabulary)

    async def _ask(
        self,
        key: str,
        messages: list[ChatCompletionMessageParam],
        schema: dict[str, Any],
        chunk: Chunk,
        index: OntologyIndexLike,
        vocabulary: Vocabulary,
    ) -> ChunkResult:
        """Ask the model until its answer is valid (``max_attempts`` in all), and cache it."""
        problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            try:
                answer = await self._complete(messages, schema)
                result = self._read(answer, chunk, index, vocabulary)
            except InvalidAnswer as exc:
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
        # PROVIDER LIMIT CALL SITE: every attempt of every model call of every extractor, in
        # every worker of the fleet, takes the provider's turn as its request goes out
        # (cache hits never reach it).
        gate = self.limit.gate(estimated_tokens(json.dumps(messages)))
        self.stats.requests += 1
        params = {"temperature": self.temperature}
        shown = [dict(m) for m in messages]
        with model_call("chat", "openai", self.model, params, messages=shown) as call:
            completion = await self._chat.complete(
                gate,
                model=self.model,
                messages=messages,
                response_format=response_format,
                temperature=self.temperature if self.temperature is not None else omit,
            )
            _report(call, completion)
            return _content(completion)

    def _read(
        self, answer: str, chunk: Chunk, index: OntologyIndexLike, vocabulary: Vocabulary
    ) -> ChunkResult:
        grounded = ground(read_answer(answer, vocabulary), chunk, index, vocabulary)
        self.stats.unaligned_entities += grounded.unaligned_entities
        self.stats.dropped_entities += grounded.dropped_entities
        self.stats.dropped_relations += grounded.dropped_relations
        return grounded.result


def _report(call: ModelCall, completion: Any) -> None:
    """The answer's model, usage and finish reason on the model call's span and metrics."""
    usage = getattr(completion, "usage", None)
    choices = getattr(completion, "choices", None) or [None]
    model, finish = getattr(completion, "model", None), getattr(choices[0], "finish_reason", None)
    tokens = [getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens")]
    call.reported(
        model=model if isinstance(model, str) else None,
        input_tokens=tokens[0] if isinstance(tokens[0], int) else None,
        output_tokens=tokens[1] if isinstance(tokens[1], int) else None,
        finish_reason=finish if isinstance(finish, str) else None,
    )


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
    raise InvalidAnswer(f"empty answer ({refused}finish_reason={finish})")
