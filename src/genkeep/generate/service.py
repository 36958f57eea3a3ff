"""Read-first generation with single flight across requests and processes (I1).

A request first looks for a stored result. On a miss, requests in one process join one
local flight, and the flight takes part in the claim protocol across processes
(``genkeep.generate.claim``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace

from opentelemetry.trace import SpanContext
from prometheus_client import Counter

from genkeep.config import GeneratorProfile, Settings
from genkeep.db.prompts import PromptKey, PromptState, PromptStore
from genkeep.errors import NotFound, PromptEmpty, PromptTooLarge, UnknownProfile
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.claim import ClaimProtocol
from genkeep.generate.generator import Generator
from genkeep.generate.metering import Metering, request_admitted, when_admitted
from genkeep.generate.normalize import normalize_prompt, profile_key, prompt_hash
from genkeep.generate.outcome import Outcome, Produce, stored_outcome
from genkeep.generate.spans import (
    describe_outcome,
    link_leader,
    start_generation,
    traced_flight,
)
from genkeep.telemetry.metrics import CACHE_HITS, COALESCED, REQUEST_LATENCY

# Labelled children looked up once: ``labels()`` takes a lock and builds a key each call.
_LATENCY = {label: REQUEST_LATENCY.labels(label) for label in ("hit", "coalesced", "generated")}


class GenerateService:
    """Generate once: the read-first, single-flight, versioned generation service."""

    def __init__(
        self,
        store: PromptStore,
        settings: Settings,
        generators: Mapping[str, Generator],
        metering: Metering | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.generators = generators
        self.metering = metering
        self.claims = ClaimProtocol(store, settings, generators, metering=metering)
        self._flights: dict[tuple[object, ...], asyncio.Task[Outcome]] = {}
        self._reads: dict[tuple[object, ...], asyncio.Future[Outcome | None]] = {}
        # The generation span of each flight's leader, linked from the requests that join it.
        self._leaders: dict[tuple[object, ...], SpanContext] = {}
        # Settings do not change during the service's life, so neither do profile keys.
        self._profile_keys: dict[str, str] = {}
        self._hit_counters: dict[str, Counter] = {}

    # -- public API ---------------------------------------------------------------------

    async def generate(
        self,
        owner_id: str,
        prompt: str,
        profile_name: str | None = None,
        cache: CacheControl = CacheControl(),
    ) -> Outcome:
        key, profile = self.key_for(owner_id, prompt, profile_name)
        return await self.generate_key(key, profile, cache, None)

    async def generate_key(
        self,
        key: PromptKey,
        profile: GeneratorProfile,
        cache: CacheControl,
        produce: Produce | None,
    ) -> Outcome:
        """Generate once for a key; ``produce`` (chat) replaces the profile's prompt call."""
        started = time.perf_counter()
        outcome = await self._join_flight(key, profile, cache, produce)
        describe_outcome(outcome)
        label = "hit" if outcome.cached else "coalesced" if outcome.coalesced else "generated"
        _LATENCY[label].observe(time.perf_counter() - started)
        return outcome

    async def regenerate(self, owner_id: str, prompt_id: str) -> Outcome:
        """A new result version for a stored prompt, with the profile it was made with."""
        prompt = await self.store.get_prompt(owner_id, prompt_id)
        if prompt is None:
            raise NotFound(f"prompt {prompt_id} not found")
        key, _ = self.key_for(owner_id, prompt.prompt_text, prompt.profile_name)
        if key.profile_key != prompt.profile_key:
            raise UnknownProfile(
                f"profile {prompt.profile_name!r} changed since this prompt was generated; "
                "generate it with the current profile instead"
            )
        return await self.generate(
            owner_id, prompt.prompt_text, prompt.profile_name, CacheControl(no_cache=True)
        )

    def key_for(
        self, owner_id: str, prompt: str, profile_name: str | None
    ) -> tuple[PromptKey, GeneratorProfile]:
        """Validate a prompt and profile and compute the prompt's unique key."""
        if len(prompt.encode("utf-8")) > self.settings.max_prompt_bytes:
            raise PromptTooLarge(
                f"prompt is larger than the limit of {self.settings.max_prompt_bytes} bytes"
            )
        normalized = normalize_prompt(prompt)
        if not normalized:
            raise PromptEmpty("prompt is empty after normalization")
        found = self.settings.profile(profile_name)
        if found is None:
            known = ", ".join(sorted(self.settings.profiles))
            raise UnknownProfile(f"unknown profile {profile_name!r}; known profiles: {known}")
        name, profile = found
        if profile.backend not in self.generators:
            raise UnknownProfile(f"profile {name!r} uses backend {profile.backend!r}, not set up")
        key = PromptKey(
            owner_id=owner_id,
            profile_name=name,
            profile_key=self._profile_key(name, profile),
            normalized_hash=prompt_hash(normalized),
            normalized_text=normalized,
            prompt_text=prompt,
        )
        return key, profile

    def _hit(self, key: PromptKey, outcome: Outcome) -> None:
        """Count a hit, and meter what it saved (nothing is spent); once its request is
        admitted (a request over its requests per minute is answered 429, not served)."""
        when_admitted(lambda: self._count_hit(key, outcome))

    def _count_hit(self, key: PromptKey, outcome: Outcome) -> None:
        self._hits(key.profile_name).inc()
        if self.metering is not None:
            self.metering.hit(
                key.profile_name,
                self.settings.profiles[key.profile_name],
                outcome.result_id,
                outcome.prompt_tokens,
                outcome.completion_tokens,
            )

    def _hits(self, profile_name: str) -> Counter:
        found = self._hit_counters.get(profile_name)
        if found is None:
            found = self._hit_counters[profile_name] = CACHE_HITS.labels(profile_name)
        return found

    def _profile_key(self, name: str, profile: GeneratorProfile) -> str:
        found = self._profile_keys.get(name)
        if found is None:
            found = self._profile_keys[name] = profile_key(profile.key_material())
        return found

    async def wait_for_persistence(self) -> None:
        """Wait until every best-effort (await off) commit has finished."""
        await self.claims.wait_for_persistence()

    @property
    def pending_persistence(self) -> int:
        return self.claims.pending_persistence

    async def aclose(self) -> None:
        await self.wait_for_persistence()
        if self.metering is not None:
            await self.metering.aclose()

    # -- read first and local flights ---------------------------------------------------

    async def _read_first(
        self, key: PromptKey, cache: CacheControl
    ) -> tuple[Outcome | None, PromptState | None]:
        """A stored answer, if one will do; and what was read, for the claim that follows."""
        if cache.no_cache:
            return None, None
        found = await self.store.find(key)
        if found is None and key.legacy is not None:
            return await self._read_legacy(key, cache), None
        if found is None or found.result is None:
            return None, found
        if not cache.accepts_stored(found.result.created_at, found.now):
            return None, found
        outcome = stored_outcome(found.id, found.result, cached=True, coalesced=False)
        self._hit(key, outcome)
        return outcome, found

    async def _read_legacy(self, key: PromptKey, cache: CacheControl) -> Outcome | None:
        """The answer stored under the request's older key version, if it means the same."""
        assert key.legacy is not None
        legacy = key.legacy()
        found = await self.store.find_with_text(
            replace(key, normalized_hash=legacy.normalized_hash, legacy=None)
        )
        if found is None or found.result is None or found.prompt_text is None:
            return None
        if not legacy.same_meaning(found.prompt_text):
            return None
        if not cache.accepts_stored(found.result.created_at, found.now):
            return None
        self._hits(key.profile_name).inc()
        return stored_outcome(found.id, found.result, cached=True, coalesced=False)

    async def _join_flight(
        self,
        key: PromptKey,
        profile: GeneratorProfile,
        cache: CacheControl,
        produce: Produce | None,
    ) -> Outcome:
        arrived = time.monotonic()
        flight_key = (key.owner_id, key.profile_key, key.normalized_hash, cache)
        flight = self._flights.get(flight_key)
        if flight is None:
            # The hot path: a hit is answered by one read and no task. Identical requests
            # that arrive during that read wait for it (a future, cheaper than a task);
            # only a miss opens a flight, which takes over what was read.
            read = self._reads.get(flight_key)
            if read is not None:
                outcome = await asyncio.shield(read)
                if outcome is not None:
                    self._hit(key, outcome)
                    return outcome
                flight = self._flights.get(flight_key)
            else:
                return await self._read_or_fly(flight_key, key, profile, cache, arrived, produce)
        if flight is None:  # the read failed or was cancelled: this request flies itself
            await request_admitted()
            opened = self._start_flight(flight_key, key, profile, cache, arrived, None, produce)
            return await asyncio.shield(opened)
        # Identical concurrent misses in this process share one claim and one generation.
        leader = self._leaders.get(flight_key)
        outcome = await asyncio.shield(flight)
        if outcome.cached:
            self._hit(key, outcome)
            return outcome
        COALESCED.labels("process").inc()
        link_leader(leader)
        return replace(outcome, cached=False, coalesced=True)

    async def _read_or_fly(
        self,
        flight_key: tuple[object, ...],
        key: PromptKey,
        profile: GeneratorProfile,
        cache: CacheControl,
        arrived: float,
        produce: Produce | None,
    ) -> Outcome:
        """Read first for every request of this key meanwhile; on a miss, open the flight."""
        read: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        self._reads[flight_key] = read
        outcome: Outcome | None = None
        opened: asyncio.Task[Outcome] | None = None
        try:
            outcome, found = await self._read_first(key, cache)
            if outcome is None:
                # Over its requests per minute, a request generates nothing (and no flight
                # is opened that others would join).
                await request_admitted()
                opened = self._start_flight(
                    flight_key, key, profile, cache, arrived, found, produce
                )
        finally:
            # Waiters wake after this: they find the hit, or the flight opened just now.
            del self._reads[flight_key]
            read.set_result(outcome)
        if outcome is not None:
            return outcome
        assert opened is not None
        return await asyncio.shield(opened)

    def _start_flight(
        self,
        flight_key: tuple[object, ...],
        key: PromptKey,
        profile: GeneratorProfile,
        cache: CacheControl,
        arrived: float,
        found: PromptState | None,
        produce: Produce | None,
    ) -> asyncio.Task[Outcome]:
        # The flight is its own task so that a cancelled request cannot cancel the others.
        flying = self.claims.fly(key, profile, cache, arrived, found, produce)
        # Only a flight has a span of its own (a hit is told on the request's span): the
        # model call is its child, and the requests that join it link to it.
        generation = start_generation(key.profile_name, profile.model)
        if generation is not None:
            self._leaders[flight_key] = generation.get_span_context()
            flying = traced_flight(generation, flying)
        flight = asyncio.create_task(flying)
        self._flights[flight_key] = flight
        flight.add_done_callback(lambda done: self._land(flight_key, done))
        return flight

    def _land(self, flight_key: tuple[object, ...], flight: asyncio.Task[Outcome]) -> None:
        self._flights.pop(flight_key, None)
        self._leaders.pop(flight_key, None)
        if not flight.cancelled():
            flight.exception()  # marks it retrieved when every waiter has gone
