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

from genkeep.config import GeneratorProfile, Settings
from genkeep.db.rate_buckets import BucketRates, RateBuckets
from genkeep.errors import UnknownProfile

log = logging.getLogger(__name__)

# A provider bucket holds one request: admissions are spaced 60/RPM apart, so no second (of
# the provider's clock or any other) sees more than RPM/60 calls.
_PROVIDER_BURST_S = 0.0
_LEAST_WAIT_S = 0.002


class ProviderLimiter:
    """Shared RPM/TPM limits per generator profile (``GeneratorProfile.rpm``/``tpm``)."""

    def __init__(self, buckets: RateBuckets, settings: Settings) -> None:
        self.buckets = buckets
        self.settings = settings

    def limited(self, profile: str) -> bool:
        found = self.settings.profiles.get(profile)
        return found is not None and (found.rpm is not None or found.tpm is not None)

    async def acquire(self, profile: str, tokens: int = 0) -> None:
        """Wait for the profile's provider limit to admit one call of ``tokens`` tokens."""
        found = self.settings.profiles.get(profile)
        if found is None:
            raise UnknownProfile(f"unknown profile {profile!r}")
        await self.acquire_for(profile, found, tokens)

    async def acquire_for(self, name: str, profile: GeneratorProfile, tokens: int = 0) -> None:
        """``acquire`` for a profile already looked up."""
        if profile.rpm is None and profile.tpm is None:
            return
        rates = BucketRates(profile.rpm, profile.tpm, _PROVIDER_BURST_S)
        while True:
            taken = await self.buckets.take(f"provider:{name}", rates, tokens)
            if taken.granted:
                return
            # A little jitter, so waiters of several processes do not all retry at once.
            await asyncio.sleep(max(taken.wait_s, _LEAST_WAIT_S) * (1 + 0.1 * random.random()))

    async def correct(self, name: str, profile: GeneratorProfile, taken: int, used: int) -> None:
        """Correct the profile's tokens per minute from an attempt's estimate (``taken``) to
        the tokens it used: the rest given back, or the excess taken."""
        if profile.tpm is None or taken == used:
            return
        rates = BucketRates(profile.rpm, profile.tpm, _PROVIDER_BURST_S)
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
