"""The claim protocol of single flight across processes (I1).

A flight claims the prompt row (insert, or compare-and-set with a lease) so that exactly one
claimant calls the generator while the others poll for its result. A claimant that dies
stops renewing its lease, and the first waiter to see it expired takes over.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

from genkeep.config import GeneratorProfile, Settings
from genkeep.core import identity, interleave
from genkeep.core.generation import Generation
from genkeep.db.prompts import Claim, PromptKey, PromptState, PromptStore
from genkeep.db.rate_buckets import RateBuckets
from genkeep.db.upstream_windows import UpstreamWindows
from genkeep.errors import (
    GenerationFailed,
    GenerationTimeout,
    GenkeepError,
    PersistenceFailed,
    UpstreamRateLimited,
)
from genkeep.generate.attempts import ATTEMPT_GATE, AttemptGate
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.generator import Generator
from genkeep.generate.limits import ProviderLimiter, estimated_tokens
from genkeep.generate.metering import Metering
from genkeep.generate.outcome import Outcome, Produce, stored_outcome, unstored_outcome
from genkeep.generate.spans import link_leader, model_call
from genkeep.telemetry.metrics import (
    COALESCED,
    GENERATOR_CALLS,
    GENERATOR_LATENCY,
    LEASE_TAKEOVERS,
    PERSISTENCE_FAILURES,
)
from genkeep.telemetry.tracing import carrier, span_context_of

log = logging.getLogger(__name__)


class ClaimProtocol:
    """Claim and generate, or wait for the claimant: one generator call per prompt version."""

    def __init__(
        self,
        store: PromptStore,
        settings: Settings,
        generators: Mapping[str, Generator],
        limiter: ProviderLimiter | None = None,
        metering: Metering | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.generators = generators
        self.limiter = limiter or ProviderLimiter(RateBuckets(store.db), settings)
        self.windows = UpstreamWindows(store.db)
        self.metering = metering
        self._persisting: set[asyncio.Task[None]] = set()

    async def wait_for_persistence(self) -> None:
        """Wait until every best-effort (await off) commit has finished."""
        while self._persisting:
            await asyncio.gather(*self._persisting, return_exceptions=True)

    @property
    def pending_persistence(self) -> int:
        return len(self._persisting)

    async def fly(
        self,
        key: PromptKey,
        profile: GeneratorProfile,
        cache: CacheControl,
        arrived: float,
        found: PromptState | None,
        produce: Produce | None,
    ) -> Outcome:
        """One flight: generate without storing, or claim the prompt (``found`` read first)."""
        if cache.no_store or not self.settings.persistence_enabled:
            generation = await self._call_generator(key, profile, produce, None)
            return unstored_outcome(generation, None, None)
        return await self._claim_or_wait(key, profile, cache, found, arrived, produce)

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
        # The claimant's generation span, read once while waiting for it (tracing on).
        leader: str | None = None
        trace = carrier()  # this flight's span: waiters elsewhere link to it
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
                claim = await self.store.claim_new(key, holder, lease_s, trace)
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
                    link_leader(span_context_of(leader))
                return stored_outcome(prompt.id, result, cached=not waited, coalesced=waited)
            claimed = prompt.claim_token is not None
            lease_live = (
                claimed
                and prompt.lease_expires_at is not None
                and prompt.lease_expires_at > found.now
            )
            if not lease_live:
                if waited and prompt.status == "failed":
                    await self._refuse_if_throttled(prompt.id)
                    raise GenerationFailed(f"generation failed: {prompt.last_error}")
                claim = await self.store.claim_existing(
                    prompt.id, prompt.latest_version, holder, lease_s, trace
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
            if not waited and trace is not None:
                leader = await self.store.claim_trace(prompt.id)
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
        # Chosen before the call: a stream names its answer by it before the result exists.
        result_id = str(uuid.uuid4())
        try:
            try:
                generation = await self._call_generator(
                    key, profile, produce, result_id, claim.prompt_id
                )
            except BaseException as exc:
                await asyncio.shield(self._release(claim, exc))
                raise
            if not self.settings.persistence_await:
                task = asyncio.create_task(
                    self._persist_later(claim, result_id, generation, heartbeat)
                )
                self._persisting.add(task)
                task.add_done_callback(self._persisting.discard)
                handed_off = True
                return unstored_outcome(generation, claim.prompt_id, result_id)
            try:
                stored = await self.store.complete(claim, result_id, generation)
            except Exception as exc:
                PERSISTENCE_FAILURES.labels("await").inc()
                log.exception("could not persist result for prompt %s", claim.prompt_id)
                await asyncio.shield(self._release(claim, exc))
                raise PersistenceFailed("the result was generated but could not be stored") from exc
            if stored is None:
                log.error("lease on prompt %s was lost before commit", claim.prompt_id)
                return unstored_outcome(generation, claim.prompt_id, None)
            return stored_outcome(claim.prompt_id, stored, cached=False, coalesced=False)
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

    async def _refuse_if_throttled(self, prompt_id: str) -> None:
        """A claimant the provider rate limited: its waiters get its 429, not a 502."""
        retry_after = await self.windows.refusal(prompt_id, self.settings.upstream_window_s)
        if retry_after is not None:
            raise UpstreamRateLimited(
                "the provider is rate limiting this prompt", retry_after_s=retry_after
            )

    async def _release(self, claim: Claim, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        try:
            if isinstance(exc, UpstreamRateLimited):
                await self.windows.throttled(claim.prompt_id, exc.retry_after_s)
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
        self,
        key: PromptKey,
        profile: GeneratorProfile,
        produce: Produce | None,
        result_id: str | None,
        prompt_id: str | None = None,
    ) -> Generation:
        started = time.perf_counter()
        tokens = estimated_tokens(key.prompt_text, profile)
        metering = self.metering
        # Admitted (limits, budgets reserved) before the call, settled after it (I16).
        admission = await metering.admit_call(profile, tokens, None) if metering else None
        gate = AttemptGate(
            windows=self.windows,
            limiter=self.limiter,
            prompt_id=prompt_id,
            profile_name=key.profile_name,
            profile=profile,
            tokens=tokens,
            window_s=self.settings.upstream_window_s,
            most=self.settings.upstream_window_attempts,
        )
        # The backend's client passes every upstream attempt through it (generate.attempts).
        gated = ATTEMPT_GATE.set(gate)
        try:
            with model_call(profile, chat=produce is not None) as call:
                if produce is None:
                    generation = await self.generators[profile.backend].generate(
                        key.prompt_text, profile
                    )
                else:
                    generation = await produce(result_id)
                call.answered(generation)
        except BaseException as exc:
            if metering is not None and admission is not None:
                await asyncio.shield(
                    metering.settle(
                        admission, key.profile_name, profile, None, None, prompt_text=""
                    )
                )
            if isinstance(exc, GenkeepError):
                GENERATOR_CALLS.labels(key.profile_name, "error").inc()
                raise
            if not isinstance(exc, Exception):
                raise
            GENERATOR_CALLS.labels(key.profile_name, "error").inc()
            raise GenerationFailed(f"generator error: {exc}") from exc
        finally:
            ATTEMPT_GATE.reset(gated)
        if generation.prompt_tokens is not None and generation.completion_tokens is not None:
            # The attempt that answered took the estimate from the provider's bucket.
            used = generation.prompt_tokens + generation.completion_tokens
            await self.limiter.correct(key.profile_name, profile, tokens, used)
        if metering is not None and admission is not None:
            await metering.settle(
                admission,
                key.profile_name,
                profile,
                generation,
                result_id,
                prompt_text=key.prompt_text,
            )
        GENERATOR_CALLS.labels(key.profile_name, "ok").inc()
        GENERATOR_LATENCY.labels(key.profile_name).observe(time.perf_counter() - started)
        return generation
