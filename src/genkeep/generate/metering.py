"""Cost control: what a generator call costs, who may make it, and the ledger of it (I16).

A request's caller (``core.caller``) may have limits, its key's and its owner's
(``db.spend``). Requests per minute are counted as a request arrives (hits too when
``GENKEEP_LIMITS_COUNT_HITS``; on the hot routes beside the stored answer's read,
``counted``); a generator call is admitted by reserving its most cost on every budget and
its tokens per minute, and settled with what it really cost. A caller with no limits costs
no database round trip: every subject's limits are read at once, and kept for
GENKEEP_LIMITS_CACHE_S.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter

from genkeep.config import GeneratorProfile, Settings
from genkeep.core.caller import CALLER, STREAMED, Caller
from genkeep.core.generation import Generation
from genkeep.db.rate_buckets import BucketRates, RateBuckets, Taken
from genkeep.db.spend import Hold, Limits, Refused, SpendStore, Usage, period_of
from genkeep.errors import BudgetExceeded, RateLimited
from genkeep.telemetry.metrics import LIMITED, USAGE_COST, USAGE_SAVED, USAGE_TOKENS

log = logging.getLogger(__name__)
_NO_LIMITS = Limits()
_HIT_FLUSH_S = 1.0
# This request's count toward its caller's requests per minute while it is being answered
# (``Metering.counted``): awaited before anything is generated for it (``request_admitted``).
_REQUEST_TAKE: ContextVar[asyncio.Future[dict[str, str]] | None] = ContextVar(
    "genkeep_request_take", default=None
)
T = TypeVar("T")
# A settle that fails (a busy or briefly unreachable database) is tried again: spend
# unrecorded is budget given back when the reservation's lease ends.
_SETTLE_ATTEMPTS = 4


def cost_micros(
    profile: GeneratorProfile, prompt_tokens: int, completion_tokens: int, cached: int = 0
) -> int:
    """Micro-dollars of a call: prices are USD per million tokens, so tokens x price."""
    cached_price = profile.price_cached_input
    cached = min(cached, prompt_tokens) if cached_price is not None else 0
    total = (
        (prompt_tokens - cached) * profile.price_input
        + cached * (cached_price or 0.0)
        + completion_tokens * profile.price_output
    )
    return math.ceil(total - 1e-9)


@dataclass(frozen=True, slots=True)
class Admission:
    """A generator call let through: the reservation to settle and the counters it holds."""

    caller: Caller | None
    reservation: str | None
    holds: tuple[Hold, ...]
    reserved_micros: int
    # The tokens-per-minute buckets the call's estimate was taken from: corrected to the
    # tokens it really used once it is done.
    tpm_buckets: tuple[tuple[str, BucketRates], ...] = ()
    estimated_tokens: int = 0


def _reset(seconds: float) -> str:
    """A reset as OpenAI writes it (``1s``, ``6m0s``, ``20ms``)."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"


class Metering:
    """Limits, budgets and the usage ledger of generator calls."""

    def __init__(self, store: SpendStore, buckets: RateBuckets, settings: Settings) -> None:
        self.store = store
        self.buckets = buckets
        self.settings = settings
        self._limits: dict[str, Limits] = {}
        self._limits_until = 0.0
        self._loading: asyncio.Future[dict[str, Limits]] | None = None
        self._hits: list[Usage] = []
        self._saved: dict[str, Counter] = {}
        self._flusher: asyncio.Task[None] | None = None
        # A reader flushing waits for a write in progress, so it reads every hit before it.
        self._flushing = asyncio.Lock()

    # -- limits of a caller -------------------------------------------------------------

    async def limits(self, subject: str) -> Limits:
        """A subject's limits (none: ``Limits()``), from a copy of every subject's limits
        read at most every GENKEEP_LIMITS_CACHE_S: one query per process, not per key."""
        if time.monotonic() >= self._limits_until:
            await self._reload_limits()
        return self._limits.get(subject, _NO_LIMITS)

    async def _reload_limits(self) -> None:
        loading = self._loading
        if loading is None:
            # Requests arriving while it loads wait for the same read.
            loading = self._loading = asyncio.ensure_future(self.store.all_limits())
            try:
                self._limits = await asyncio.shield(loading)
                self._limits_until = time.monotonic() + self.settings.limits_cache_s
            finally:
                self._loading = None
        else:
            await asyncio.shield(loading)

    async def _subjects(self, caller: Caller) -> list[tuple[str, Limits]]:
        subjects = [f"owner:{caller.owner_id}"]
        if caller.key_id is not None:
            subjects.insert(0, f"key:{caller.key_id}")
        found = [(s, await self.limits(s)) for s in subjects]
        return [(s, limits) for s, limits in found if limits.any]

    def _rates(self, limits: Limits) -> BucketRates:
        return BucketRates(limits.rpm, limits.tpm, self.settings.rate_limit_burst_s)

    # -- requests -----------------------------------------------------------------------

    async def admit_request(self) -> dict[str, str]:
        """Count this request toward its caller's requests per minute (when hits count);
        the x-ratelimit-* headers to answer with, or RateLimited."""
        caller = CALLER.get()
        if caller is None or not self.settings.limits_count_hits:
            return {}
        headers, _ = await self._take(caller, tokens=0, requests=1.0)
        return headers

    async def counted(self, answer: Callable[[], Awaitable[T]]) -> tuple[T, dict[str, str]]:
        """``answer()`` while this request is counted (``admit_request``), both at once: a
        hit's read does not wait for the count's round trip, and nothing is generated before
        the count admitted it (``request_admitted``). The answer and the x-ratelimit-*
        headers, or RateLimited (a refused hit's answer is not given)."""
        pending = self._start_request()
        if pending is None:
            return await answer(), {}
        token = _REQUEST_TAKE.set(pending)
        try:
            result = await answer()
        except BaseException:
            pending.add_done_callback(_retrieved)
            raise
        finally:
            _REQUEST_TAKE.reset(token)
        return result, await pending

    def _start_request(self) -> asyncio.Future[dict[str, str]] | None:
        """``admit_request`` started, or None when it would count nothing (known without a
        task: the caller's limits, cached, limit no requests)."""
        caller = CALLER.get()
        if caller is None or not self.settings.limits_count_hits:
            return None
        if time.monotonic() < self._limits_until:
            subjects = [f"owner:{caller.owner_id}"]
            if caller.key_id is not None:
                subjects.append(f"key:{caller.key_id}")
            found = [self._limits.get(subject, _NO_LIMITS) for subject in subjects]
            if all(limits.rpm is None and limits.tpm is None for limits in found):
                return None
        return asyncio.ensure_future(self.admit_request())

    async def _take(
        self, caller: Caller, tokens: int, requests: float
    ) -> tuple[dict[str, str], list[tuple[str, BucketRates]]]:
        """Take from every bucket of the caller's subjects; the headers, and the buckets
        ``tokens`` were taken from (to correct later)."""
        headers: dict[str, str] = {}
        took: list[tuple[str, BucketRates]] = []
        for subject, limits in await self._subjects(caller):
            if limits.tpm is None and (limits.rpm is None or not requests):
                continue  # nothing this subject limits would be taken
            rates = self._rates(limits)
            name = f"rate:{subject}"
            taken = await self.buckets.take(name, rates, tokens, requests)
            headers.update(_headers(limits, taken, rates))
            if taken.granted and tokens and limits.tpm is not None:
                took.append((name, rates))
            if not taken.granted:
                # What earlier subjects' buckets gave is given back: the call is not made.
                await self._correct(took, tokens, 0)
                LIMITED.labels("rpm" if taken.requests_left < requests else "tpm").inc()
                raise RateLimited(
                    f"{subject.split(':')[0]} rate limit reached "
                    f"({limits.rpm or '-'} requests, {limits.tpm or '-'} tokens per minute)",
                    retry_after_s=taken.wait_s,
                    headers=headers,
                )
        return headers, took

    async def _correct(
        self, buckets: Sequence[tuple[str, BucketRates]], estimated: int, used: int
    ) -> None:
        """Correct tokens-per-minute buckets from a call's estimate to what it used: the rest
        given back, or the excess taken (a bucket may go below zero: the next call waits)."""
        if not buckets or estimated == used:
            return
        try:
            for name, rates in buckets:
                await self.buckets.correct(name, rates, estimated - used, estimated)
        except Exception:
            # Only the next minute's admissions are off; the answer must not be lost for it.
            log.exception("could not correct the tokens per minute of %s", buckets)

    # -- generator calls ----------------------------------------------------------------

    async def admit_call(
        self, profile: GeneratorProfile, estimated_tokens: int, max_output: int | None
    ) -> Admission:
        """Let a generator call through: tokens per minute and its most cost reserved on
        every budget, in one transaction; RateLimited or BudgetExceeded otherwise."""
        caller = CALLER.get()
        if caller is None:
            return Admission(None, None, (), 0)
        subjects = await self._subjects(caller)
        if not subjects:
            return Admission(caller, None, (), 0)
        requests = 0.0 if self.settings.limits_count_hits else 1.0
        _, took = await self._take(caller, estimated_tokens, requests)
        tpm = tuple(took)
        output = max_output or profile.max_tokens or profile.estimate_output_tokens
        most = cost_micros(profile, max(0, estimated_tokens - output), output)
        holds = tuple(hold for subject, limits in subjects for hold in _holds(subject, limits))
        if not holds:
            return Admission(caller, None, (), 0, tpm, estimated_tokens)
        try:
            reserved = await self.store.reserve(holds, most, self.settings.reservation_lease_s)
        except BaseException:
            await asyncio.shield(self._correct(tpm, estimated_tokens, 0))
            raise
        if isinstance(reserved, Refused):
            await self._correct(tpm, estimated_tokens, 0)
            LIMITED.labels("budget").inc()
            raise BudgetExceeded(
                f"the budget of {reserved.subject} for {reserved.period} is spent: "
                f"${reserved.spent_micros / 1e6:.6f} spent and "
                f"${reserved.reserved_micros / 1e6:.6f} held of ${reserved.cap_micros / 1e6:.6f}; "
                f"this call may cost ${most / 1e6:.6f}",
                retry_after_s=_until_next(reserved.period),
            )
        return Admission(caller, reserved, holds, most, tpm, estimated_tokens)

    async def settle(
        self,
        admission: Admission,
        profile_name: str,
        profile: GeneratorProfile,
        generation: Generation | None,
        result_id: str | None,
        *,
        prompt_text: str,
    ) -> None:
        """Record the call's real usage and release its reservation (``generation`` None:
        the call failed, so it cost nothing that genkeep was told of)."""
        caller = admission.caller or CALLER.get()
        prompt_tokens, completion_tokens = _tokens(generation, prompt_text)
        cached = min(_cached_tokens(generation), prompt_tokens)
        cost = cost_micros(profile, prompt_tokens, completion_tokens, cached)
        used = prompt_tokens + completion_tokens
        await self._correct(admission.tpm_buckets, admission.estimated_tokens, used)
        USAGE_TOKENS.labels(profile_name, "in").inc(prompt_tokens)
        USAGE_TOKENS.labels(profile_name, "out").inc(completion_tokens)
        USAGE_COST.labels(profile_name).inc(cost / 1e6)
        usage = Usage(
            owner_id=caller.owner_id if caller else "",
            key_id=caller.key_id if caller else None,
            profile_name=profile_name,
            result_id=result_id,
            trace_id=caller.trace_id if caller else None,
            hit=False,
            streamed=STREAMED.get(),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_micros=cost,
            saved_micros=0,
            cached_tokens=cached,
        )
        if caller is None:
            return  # a call for no request (a worker's): counted in the metrics only
        for attempt in range(_SETTLE_ATTEMPTS):
            try:
                await self.store.settle(admission.reservation, usage, admission.holds)
                return
            except Exception:
                if attempt + 1 == _SETTLE_ATTEMPTS:
                    # Its lease releases the reservation (which covered this cost until then);
                    # the call's answer must not be lost for its bookkeeping.
                    log.exception("could not record the usage of result %s", result_id)
                    return
                await asyncio.sleep(0.1 * 2**attempt)

    # -- hits ---------------------------------------------------------------------------

    def hit(
        self,
        profile_name: str,
        profile: GeneratorProfile,
        result_id: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
    ) -> None:
        """A hit spends nothing and saves what its call cost; written in batches, off the
        hit's path (one insert a second)."""
        caller = CALLER.get()
        if caller is None:
            return
        tokens_in, tokens_out = prompt_tokens or 0, completion_tokens or 0
        saved = cost_micros(profile, tokens_in, tokens_out)
        if saved:
            counter = self._saved.get(profile_name)
            if counter is None:  # labels() takes a lock and builds a key: once per profile
                counter = self._saved[profile_name] = USAGE_SAVED.labels(profile_name)
            counter.inc(saved / 1e6)
        self._hits.append(
            Usage(
                owner_id=caller.owner_id,
                key_id=caller.key_id,
                profile_name=profile_name,
                result_id=result_id,
                trace_id=caller.trace_id,
                hit=True,
                streamed=False,
                prompt_tokens=tokens_in,
                completion_tokens=tokens_out,
                cost_micros=0,
                saved_micros=saved,
            )
        )
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(_HIT_FLUSH_S)
        await self.flush()

    async def flush(self) -> None:
        """Write the hits recorded so far."""
        async with self._flushing:
            hits, self._hits = self._hits, []
            try:
                await self.store.record(hits)
            except Exception:
                log.exception("could not record %d hits in the usage ledger", len(hits))

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()


async def request_admitted() -> None:
    """Wait until this request's count (``Metering.counted``) admitted it: RateLimited if
    it did not. Nothing to wait for outside ``counted``."""
    pending = _REQUEST_TAKE.get()
    if pending is not None:
        await pending


def when_admitted(record: Callable[[], None]) -> None:
    """``record()`` now, or once this request's count (``Metering.counted``) admitted it;
    never if it was refused: a refused request's hit is neither served nor counted."""
    pending = _REQUEST_TAKE.get()
    if pending is None:
        record()
    elif pending.done():
        if _granted(pending):
            record()
    else:
        pending.add_done_callback(lambda done: record() if _granted(done) else None)


def _granted(done: asyncio.Future[dict[str, str]]) -> bool:
    return not done.cancelled() and done.exception() is None


def _retrieved(done: asyncio.Future[dict[str, str]]) -> None:
    if not done.cancelled():
        done.exception()  # the answer failed first; its count's refusal goes unsaid


def _holds(subject: str, limits: Limits) -> list[Hold]:
    holds = []
    if limits.budget_micros is not None:
        holds.append(Hold(subject, period_of(limits.budget_period), limits.budget_micros))
    if limits.lifetime_micros is not None:
        holds.append(Hold(subject, "lifetime", limits.lifetime_micros))
    return holds


def _tokens(generation: Generation | None, prompt_text: str) -> tuple[int, int]:
    """The call's tokens as the upstream reported them, else counted (words)."""
    if generation is None:
        return 0, 0
    prompt_tokens = generation.prompt_tokens
    if prompt_tokens is None:
        prompt_tokens = len(prompt_text.split())
    completion_tokens = generation.completion_tokens
    if completion_tokens is None:
        completion_tokens = len(generation.content.split())
    return prompt_tokens, completion_tokens


def _cached_tokens(generation: Generation | None) -> int:
    """The prompt tokens the provider served from its cache, as its usage reports them
    (``prompt_tokens_details.cached_tokens``, kept in the generation's details)."""
    usage = (generation.details or {}).get("usage") if generation is not None else None
    found = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = found.get("cached_tokens") if isinstance(found, dict) else None
    return cached if isinstance(cached, int) and not isinstance(cached, bool) and cached > 0 else 0


def _headers(limits: Limits, taken: Taken, rates: BucketRates) -> dict[str, str]:
    headers: dict[str, str] = {}
    if limits.rpm is not None:
        left = max(0.0, taken.requests_left)
        headers["x-ratelimit-limit-requests"] = str(limits.rpm)
        headers["x-ratelimit-remaining-requests"] = str(math.floor(left))
        full = (rates.request_capacity() - left) * 60 / limits.rpm
        headers["x-ratelimit-reset-requests"] = _reset(max(full, taken.wait_s))
    if limits.tpm is not None:
        left = max(0.0, taken.tokens_left)
        headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(math.floor(left))
        full = max(0.0, rates.token_capacity(0) - left) * 60 / limits.tpm
        headers["x-ratelimit-reset-tokens"] = _reset(max(full, taken.wait_s))
    return headers


def _until_next(period: str) -> float:
    """Seconds until a budget period ends (a lifetime cap never does: a day is said)."""
    now = time.time()
    if len(period) == 10:  # a day
        return 86400 - now % 86400
    return 86400.0
