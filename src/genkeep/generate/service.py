"""Read-first generation with single flight across requests and processes (I1).

A request first looks for a stored result. On a miss, requests in one process join one
local flight; the flight claims the prompt row in the database (insert or compare-and-set
with a lease) so that across processes exactly one claimant calls the generator while the
others poll for its result. A claimant that dies stops renewing its lease, and the first
waiter to see it expired takes over.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from prometheus_client import Counter

from genkeep import identity, interleave
from genkeep.config import GeneratorProfile, Settings
from genkeep.db.prompts import Claim, PromptKey, PromptState, PromptStore, StoredResult
from genkeep.errors import (
    GenerationFailed,
    GenerationTimeout,
    GenkeepError,
    NotFound,
    PersistenceFailed,
    PromptEmpty,
    PromptTooLarge,
    UnknownProfile,
)
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.generator import Generation, Generator
from genkeep.generate.normalize import normalize_prompt, profile_key, prompt_hash, sha256_hex
from genkeep.metrics import (
    CACHE_HITS,
    COALESCED,
    GENERATOR_CALLS,
    GENERATOR_LATENCY,
    LEASE_TAKEOVERS,
    PERSISTENCE_FAILURES,
    REQUEST_LATENCY,
)

log = logging.getLogger(__name__)
# Labelled children looked up once: ``labels()`` takes a lock and builds a key each call.
_LATENCY = {label: REQUEST_LATENCY.labels(label) for label in ("hit", "coalesced", "generated")}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a generate request answers."""

    prompt_id: str | None
    result_id: str | None
    version: int | None
    content: str
    content_sha256: str
    model: str
    source: str
    cached: bool
    coalesced: bool
    persisted: bool
    # The generator's usage as stored with the result; None when it reported none.
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def as_json(self) -> dict[str, object]:
        """The response body (``dataclasses.asdict`` deep-copies: a tenth of a hit's cost)."""
        return {
            "prompt_id": self.prompt_id,
            "result_id": self.result_id,
            "version": self.version,
            "content": self.content,
            "content_sha256": self.content_sha256,
            "model": self.model,
            "source": self.source,
            "cached": self.cached,
            "coalesced": self.coalesced,
            "persisted": self.persisted,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


# A generator call made elsewhere (chat completions); None means the profile's prompt call.
Produce = Callable[[], Awaitable[Generation]]


def _stored(prompt: PromptState, result: StoredResult, *, cached: bool, coalesced: bool) -> Outcome:
    return Outcome(
        prompt_id=prompt.id,
        result_id=result.id,
        version=result.version,
        content=result.content,
        content_sha256=result.content_sha256,
        model=result.model,
        source=result.source,
        cached=cached,
        coalesced=coalesced,
        persisted=True,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )


def _unstored(generation: Generation, prompt_id: str | None, result_id: str | None) -> Outcome:
    return Outcome(
        prompt_id=prompt_id,
        result_id=result_id,
        version=None,
        content=generation.content,
        content_sha256=sha256_hex(generation.content),
        model=generation.model,
        source="generated",
        cached=False,
        coalesced=False,
        persisted=False,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
    )


class GenerateService:
    """Generate once: the read-first, single-flight, versioned generation service."""

    def __init__(
        self, store: PromptStore, settings: Settings, generators: Mapping[str, Generator]
    ) -> None:
        self.store = store
        self.settings = settings
        self.generators = generators
        self._flights: dict[tuple[object, ...], asyncio.Task[Outcome]] = {}
        self._reads: dict[tuple[object, ...], asyncio.Future[Outcome | None]] = {}
        self._persisting: set[asyncio.Task[None]] = set()
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
        started = time.perf_counter()
        key, profile = self.key_for(owner_id, prompt, profile_name)
        outcome = await self._join_flight(key, profile, cache, None)
        label = "hit" if outcome.cached else "coalesced" if outcome.coalesced else "generated"
        REQUEST_LATENCY.labels(label).observe(time.perf_counter() - started)
        return outcome

    async def generate_key(
        self, key: PromptKey, profile: GeneratorProfile, cache: CacheControl, produce: Produce
    ) -> Outcome:
        """Generate once for a key made elsewhere, calling ``produce`` if this one leads."""
        started = time.perf_counter()
        outcome = await self._join_flight(key, profile, cache, produce)
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
        while self._persisting:
            await asyncio.gather(*self._persisting, return_exceptions=True)

    @property
    def pending_persistence(self) -> int:
        return len(self._persisting)

    async def aclose(self) -> None:
        await self.wait_for_persistence()

    # -- read first and local flights ---------------------------------------------------

    async def _read_first(
        self, key: PromptKey, cache: CacheControl
    ) -> tuple[Outcome | None, PromptState | None]:
        """A stored answer, if one will do; and what was read, for the claim that follows."""
        if cache.no_cache:
            return None, None
        found = await self.store.find(key)
        if found is None or found.result is None:
            return None, found
        if not cache.accepts_stored(found.result.created_at, found.now):
            return None, found
        self._hits(key.profile_name).inc()
        return _stored(found, found.result, cached=True, coalesced=False), found

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
                    self._hits(key.profile_name).inc()
                    return outcome
                flight = self._flights.get(flight_key)
            else:
                return await self._read_or_fly(flight_key, key, profile, cache, arrived, produce)
        if flight is None:  # the read failed or was cancelled: this request flies itself
            return await self._open_flight(flight_key, key, profile, cache, arrived, None, produce)
        # Identical concurrent misses in this process share one claim and one generation.
        outcome = await asyncio.shield(flight)
        if outcome.cached:
            self._hits(key.profile_name).inc()
            return outcome
        COALESCED.labels("process").inc()
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

    async def _open_flight(
        self,
        flight_key: tuple[object, ...],
        key: PromptKey,
        profile: GeneratorProfile,
        cache: CacheControl,
        arrived: float,
        found: PromptState | None,
        produce: Produce | None,
    ) -> Outcome:
        return await asyncio.shield(
            self._start_flight(flight_key, key, profile, cache, arrived, found, produce)
        )

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
        flight = asyncio.create_task(self._fly(key, profile, cache, arrived, found, produce))
        self._flights[flight_key] = flight
        flight.add_done_callback(lambda done: self._land(flight_key, done))
        return flight

    def _land(self, flight_key: tuple[object, ...], flight: asyncio.Task[Outcome]) -> None:
        self._flights.pop(flight_key, None)
        if not flight.cancelled():
            flight.exception()  # marks it retrieved when every waiter has gone

    async def _fly(
        self,
        key: PromptKey,
        profile: GeneratorProfile,
        cache: CacheControl,
        arrived: float,
        found: PromptState | None,
        produce: Produce | None,
    ) -> Outcome:
        if cache.no_store or not self.settings.persistence_enabled:
            generation = await self._call_generator(key, profile, produce)
            return _unstored(generation, None, None)
        return await self._claim_or_wait(key, profile, cache, found, arrived, produce)

    # -- the database claim protocol ----------------------------------------------------

    async def _claim_or_wait(
        self,
        key: PromptKey,
        profile: GeneratorProfile,
        cache: CacheControl,
        first: PromptState | None,
        arrived: float,
        produce: Produce | None,
    ) -> Outcome:
        """Claim the prompt and generate, or wait for the claimant's result.

        A result "newer than this request" (all that max-age=0 and no-cache accept) is one
        above the version read first, or one the database stamped after the request arrived:
        so simultaneous requests share one generator call whatever their directives. The
        arrival is placed on the database's clock by this process's monotonic clock (a
        duration, which skew cannot shift); leases are judged by the database's clock alone.
        """
        deadline = time.monotonic() + self.settings.claim_wait_s
        lease_s, holder = self.settings.claim_lease_s, identity.process_id()
        baseline: int | None = None
        arrived_at: datetime | None = None
        waited = False
        while True:
            found = first if first is not None else await self.store.find(key)
            first = None
            if baseline is None:
                baseline = 0 if found is None else found.latest_version
                if found is not None:
                    # Measured after the read returned: an early bound of the arrival, so a
                    # result stamped during the read (committed after the request came) is
                    # newer; paying twice for a simultaneous request is the worse error.
                    arrived_at = found.now - timedelta(seconds=time.monotonic() - arrived)
            await interleave.point("generate.before_claim")
            if found is None:
                claim = await self.store.claim_new(key, holder, lease_s)
                if claim is not None:
                    return await self._lead(claim, key, profile, produce)
                continue
            prompt, result = found, found.result
            newer = result is not None and (
                result.version > baseline
                or (arrived_at is not None and result.created_at >= arrived_at)
            )
            if result is not None and (
                cache.accepts_new(result.source)
                if newer
                else cache.accepts_stored(result.created_at, found.now)
            ):
                if waited:
                    COALESCED.labels("database").inc()
                return _stored(prompt, result, cached=not waited, coalesced=waited)
            claimed = prompt.claim_token is not None
            lease_live = (
                claimed
                and prompt.lease_expires_at is not None
                and prompt.lease_expires_at > found.now
            )
            if not lease_live:
                if waited and prompt.status == "failed":
                    raise GenerationFailed(f"generation failed: {prompt.last_error}")
                claim = await self.store.claim_existing(
                    prompt.id, prompt.latest_version, holder, lease_s
                )
                if claim is not None:
                    if claimed:
                        LEASE_TAKEOVERS.inc()
                        log.warning(
                            "took over prompt %s from %s after its lease expired",
                            prompt.id,
                            prompt.claim_holder,
                        )
                    return await self._lead(claim, key, profile, produce)
                continue
            waited = True
            if time.monotonic() >= deadline:
                raise GenerationTimeout(
                    f"waited {self.settings.claim_wait_s:g}s for another request's generation"
                )
            await asyncio.sleep(self.settings.claim_poll_s)

    async def _lead(
        self, claim: Claim, key: PromptKey, profile: GeneratorProfile, produce: Produce | None
    ) -> Outcome:
        heartbeat = asyncio.create_task(self._heartbeat(claim))
        handed_off = False
        try:
            try:
                generation = await self._call_generator(key, profile, produce)
            except BaseException as exc:
                await asyncio.shield(self._release(claim, exc))
                raise
            result_id = str(uuid.uuid4())
            if not self.settings.persistence_await:
                task = asyncio.create_task(
                    self._persist_later(claim, result_id, generation, heartbeat)
                )
                self._persisting.add(task)
                task.add_done_callback(self._persisting.discard)
                handed_off = True
                return _unstored(generation, claim.prompt_id, result_id)
            try:
                stored = await self.store.complete(claim, result_id, generation)
            except Exception as exc:
                PERSISTENCE_FAILURES.labels("await").inc()
                log.exception("could not persist result for prompt %s", claim.prompt_id)
                await asyncio.shield(self._release(claim, exc))
                raise PersistenceFailed("the result was generated but could not be stored") from exc
            if stored is None:
                log.error("lease on prompt %s was lost before commit", claim.prompt_id)
                return _unstored(generation, claim.prompt_id, None)
            return Outcome(
                prompt_id=claim.prompt_id,
                result_id=stored.id,
                version=stored.version,
                content=stored.content,
                content_sha256=stored.content_sha256,
                model=stored.model,
                source=stored.source,
                cached=False,
                coalesced=False,
                persisted=True,
                prompt_tokens=stored.prompt_tokens,
                completion_tokens=stored.completion_tokens,
            )
        finally:
            if not handed_off:
                heartbeat.cancel()

    async def _persist_later(
        self, claim: Claim, result_id: str, generation: Generation, heartbeat: asyncio.Task[None]
    ) -> None:
        """Best-effort commit: a failure is logged and counted, never seen by the caller."""
        try:
            if await self.store.complete(claim, result_id, generation) is None:
                raise RuntimeError("lease lost before commit")
        except Exception as exc:
            PERSISTENCE_FAILURES.labels("best-effort").inc()
            log.error("best-effort persistence failed for prompt %s: %s", claim.prompt_id, exc)
            await self._release(claim, exc)
        finally:
            heartbeat.cancel()

    async def _release(self, claim: Claim, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        try:
            await self.store.fail(claim, reason)
        except Exception:
            # The lease will expire on its own; a waiter then takes over.
            log.exception("could not release claim on prompt %s", claim.prompt_id)

    async def _heartbeat(self, claim: Claim) -> None:
        interval = self.settings.claim_lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.store.extend_lease(claim, self.settings.claim_lease_s):
                    log.warning("lease on prompt %s was taken over", claim.prompt_id)
                    return
            except Exception:
                log.exception("heartbeat for prompt %s failed; retrying", claim.prompt_id)

    async def _call_generator(
        self, key: PromptKey, profile: GeneratorProfile, produce: Produce | None
    ) -> Generation:
        started = time.perf_counter()
        try:
            if produce is None:
                generation = await self.generators[profile.backend].generate(
                    key.prompt_text, profile
                )
            else:
                generation = await produce()
        except GenkeepError:
            GENERATOR_CALLS.labels(key.profile_name, "error").inc()
            raise
        except Exception as exc:
            GENERATOR_CALLS.labels(key.profile_name, "error").inc()
            raise GenerationFailed(f"generator error: {exc}") from exc
        GENERATOR_CALLS.labels(key.profile_name, "ok").inc()
        GENERATOR_LATENCY.labels(key.profile_name).observe(time.perf_counter() - started)
        return generation
