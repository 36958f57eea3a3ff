"""Embeddings through generate once: each input text is a stored result of its own.

An input's key is the owner, the profile (model), the dimensions, the encoding format and
the text exactly (a space changes a vector, so nothing is normalized). A request's inputs
each go through the read-first, single-flight path; the ones that miss and lead their
flight are gathered into one upstream call (``_Batch``), so a batch of 100 with 50 stored
sends the 50 others upstream together, and concurrent identical inputs make one call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from genkeep.config import GeneratorProfile
from genkeep.core.generation import Generation
from genkeep.core.hashes import sha256_hex
from genkeep.db.prompts import PromptKey
from genkeep.errors import BadInput, PromptTooLarge, UnknownModel, UnknownProfile
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.chat import unknown_model
from genkeep.generate.embedder import Embedder, EmbeddingCall
from genkeep.generate.normalize import profile_key as hash_profile
from genkeep.generate.outcome import Outcome
from genkeep.generate.service import GenerateService

# How long a batch waits, once no input of it has moved on, for inputs that wait on another
# flight: two requests that each lead what the other waits for would otherwise wait forever.
_LINGER_S = 1.0


@dataclass(frozen=True, slots=True)
class EmbeddingAnswer:
    """One outcome per input, in order, and the model the vectors came from."""

    outcomes: list[Outcome]
    model: str


class _Batch:
    """The leading misses of one request, sent upstream in one call once every other input
    of the request has been answered (a hit, or another flight's result)."""

    def __init__(
        self, embedder: Embedder, call: EmbeddingCall, profile: GeneratorProfile, size: int
    ) -> None:
        self.embedder, self.call, self.profile = embedder, call, profile
        self.undecided = size
        self.waiting: list[tuple[int, str, asyncio.Future[Generation]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def produce(self, index: int, text: str) -> asyncio.Future[Generation]:
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        self.waiting.append((index, text, future))
        self._moved()
        return future

    def answered(self) -> None:
        """An input was answered without this batch (a hit or another flight's result)."""
        self.undecided -= 1
        self._moved()

    def _moved(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.waiting:
            return
        if len(self.waiting) >= self.undecided:
            self._send()
        else:
            self._timer = asyncio.get_running_loop().call_later(_LINGER_S, self._send)

    def _send(self) -> None:
        self._timer = None
        # In the request's order, whichever order the flights reached their claims in.
        waiting, self.waiting = sorted(self.waiting, key=lambda item: item[0]), []
        self.undecided -= len(waiting)
        # Its own task: the flights that wait on it are shielded, and so is the call.
        task = asyncio.create_task(self._call(waiting))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def _call(self, waiting: list[tuple[int, str, asyncio.Future[Generation]]]) -> None:
        try:
            generations = await self.embedder.embed(
                [text for _, text, _ in waiting], self.call, self.profile
            )
        except BaseException as exc:
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), generation in zip(waiting, generations, strict=True):
            if not future.done():
                future.set_result(generation)


class EmbeddingService:
    """Resolves models to profiles and answers embedding requests through generate once."""

    def __init__(self, generate: GenerateService) -> None:
        self.generate = generate
        self.settings = generate.settings
        self._profile_keys: dict[tuple[str, EmbeddingCall], str] = {}

    async def embed(
        self,
        owner_id: str,
        model: str,
        texts: list[str],
        call: EmbeddingCall,
        cache: CacheControl,
    ) -> EmbeddingAnswer:
        found = self.settings.profile(model) if model else None
        if found is None:
            raise UnknownModel(unknown_model(model))
        name, profile = found
        embedder = self.generate.generators.get(profile.backend)
        if embedder is None or not hasattr(embedder, "embed"):
            raise UnknownProfile(f"model {name!r} uses backend {profile.backend!r}, not set up")
        profile_key = self._profile_key(name, profile, call)
        keys = [self._key(owner_id, name, profile_key, text) for text in texts]
        batch = _Batch(embedder, call, profile, len(keys))  # type: ignore[arg-type]

        async def one(index: int, key: PromptKey) -> Outcome:
            produced = False

            async def produce(result_id: str | None) -> Generation:
                nonlocal produced
                produced = True
                return await batch.produce(index, key.prompt_text)

            try:
                return await self.generate.generate_key(key, profile, cache, produce)
            finally:
                if not produced:
                    batch.answered()

        # Identical inputs in one request are one flight, as concurrent requests are.
        outcomes = await asyncio.gather(*(one(index, key) for index, key in enumerate(keys)))
        return EmbeddingAnswer(list(outcomes), outcomes[0].model if outcomes else profile.model)

    def _key(self, owner_id: str, name: str, profile_key: str, text: str) -> PromptKey:
        if not text:
            raise BadInput("'input' must not hold an empty string")
        if "\x00" in text:
            raise BadInput("'input' must not contain NUL characters")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise BadInput("'input' holds text that is not valid Unicode") from None
        if size > self.settings.max_prompt_bytes:
            raise PromptTooLarge(
                f"an input is larger than the limit of {self.settings.max_prompt_bytes} bytes"
            )
        return PromptKey(
            owner_id=owner_id,
            profile_name=name,
            profile_key=profile_key,
            normalized_hash=sha256_hex(text),
            normalized_text=text,
            prompt_text=text,
        )

    def _profile_key(self, name: str, profile: GeneratorProfile, call: EmbeddingCall) -> str:
        # Settings do not change during the service's life, so neither do profile keys.
        found = self._profile_keys.get((name, call))
        if found is None:
            found = self._profile_keys[(name, call)] = hash_profile(
                {
                    "api": "embeddings",
                    "profile": profile.key_material(),
                    "dimensions": call.dimensions,
                    "encoding_format": call.encoding_format,
                }
            )
        return found
