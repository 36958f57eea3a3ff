"""The provider's limits per profile (RPM/TPM), one token bucket in the database for every
API and worker process, so together they stay under what the provider allows.

``await limiter.acquire("gpt-4o", tokens=1500)`` waits until the profile's bucket has one
request and ``tokens`` left and takes them; a profile without ``rpm``/``tpm`` returns at once
without touching the database.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from genkeep.config import GeneratorProfile, Settings
from genkeep.db.rate_buckets import BucketRates, RateBuckets
from genkeep.errors import UnknownProfile

log = logging.getLogger(__name__)

# A provider bucket holds one request: no burst, admissions are spaced 60/RPM x (1 + slack)
# apart by the database's clock. A call reaches the provider some time after its admission
# (the take's way back, the process's own delays), so a 1 s window of the provider's clock
# holds calls admitted over 1 s plus the spread of those delays: the spacing's slack covers
# a spread up to GENKEEP_PROVIDER_LIMIT_SLACK_S, and an admission that took longer than that
# to come back is void (its turn unused), so the spread stays under it.
_PROVIDER_BURST_S = 0.0
_LEAST_WAIT_S = 0.002
# A process whose admissions keep coming back late would never call: after this many voids
# in a row it calls anyway (logged), so a stalled machine slows down rather than stops.
_MOST_VOIDS = 3


class ProviderLimiter:
    """Shared RPM/TPM limits per generator profile (``GeneratorProfile.rpm``/``tpm``)."""

    def __init__(self, buckets: RateBuckets, settings: Settings) -> None:
        self.buckets = buckets
        self.settings = settings

    def limited(self, profile: str) -> bool:
        found = self.settings.profiles.get(profile)
        return found is not None and (found.rpm is not None or found.tpm is not None)

    def rates(self, profile: GeneratorProfile) -> BucketRates:
        """The profile's bucket: its rates less the slack's share, one call deep."""
        stretch = 1 + self.settings.provider_limit_slack_s
        rpm = None if profile.rpm is None else profile.rpm / stretch
        tpm = None if profile.tpm is None else profile.tpm / stretch
        return BucketRates(rpm, tpm, _PROVIDER_BURST_S)

    async def acquire(self, profile: str, tokens: int = 0) -> float:
        """Wait for the profile's provider limit to admit one call of ``tokens`` tokens; when
        its admission was asked (``time.monotonic()``, for ``late``)."""
        found = self.settings.profiles.get(profile)
        if found is None:
            raise UnknownProfile(f"unknown profile {profile!r}")
        return await self.acquire_for(profile, found, tokens)

    def late(self, asked: float) -> bool:
        """Whether a call admitted when ``asked`` is now later than the slack allows."""
        slack = self.settings.provider_limit_slack_s
        return bool(asked and slack and time.monotonic() - asked > slack)

    async def acquire_for(self, name: str, profile: GeneratorProfile, tokens: int = 0) -> float:
        """``acquire`` for a profile already looked up."""
        if profile.rpm is None and profile.tpm is None:
            return 0.0
        rates = self.rates(profile)
        bucket = f"provider:{name}"
        slack = self.settings.provider_limit_slack_s
        voids = 0
        while True:
            asked = time.monotonic()
            taken = await self.buckets.take(bucket, rates, tokens)
            if taken.granted:
                late = time.monotonic() - asked
                if not slack or late <= slack:
                    return asked
                if voids >= _MOST_VOIDS:
                    log.warning(
                        "provider admissions of %s keep coming back late (%.3fs, slack %gs): "
                        "calling anyway",
                        name,
                        late,
                        slack,
                    )
                    return time.monotonic()
                # Void: its turn goes unused (given back, it would let a call through now,
                # next to the one after it); its tokens are given back.
                voids += 1
                if tokens and rates.tpm is not None:
                    await self.correct(name, profile, tokens, 0)
                continue
            # A little jitter, so waiters of several processes do not all retry at once.
            await asyncio.sleep(max(taken.wait_s, _LEAST_WAIT_S) * (1 + 0.1 * random.random()))

    async def correct(self, name: str, profile: GeneratorProfile, taken: int, used: int) -> None:
        """Correct the profile's tokens per minute from an attempt's estimate (``taken``) to
        the tokens it used: the rest given back, or the excess taken."""
        if profile.tpm is None or taken == used:
            return
        rates = self.rates(profile)
        try:
            await self.buckets.correct(f"provider:{name}", rates, taken - used, taken)
        except Exception:
            # Only the next admissions are off; the answer must not be lost for it.
            log.exception("could not correct the provider tokens per minute of %s", name)


def estimated_tokens(text: str, profile: GeneratorProfile, max_tokens: int | None = None) -> int:
    """A call's most tokens before it is made: its input (about 4 characters a token) and
    the most output it may produce."""
    output = max_tokens or profile.max_tokens or profile.estimate_output_tokens
    return len(text) // 4 + 1 + output
