"""The provider limit an extractor's model calls pass: one seam, no limit by default.

The shared, database-backed limiter (``generate.limits``, a token bucket per provider
profile, I16) plugs in through ``ProfileLimit``: the extractor's model shares the bucket of
the generator profile that names the same model, so generations and extractions together
stay under the provider's limit.
"""

from __future__ import annotations

from typing import Protocol

from genkeep.config import GeneratorProfile, Settings
from genkeep.generate.attempts import ProviderTurn
from genkeep.generate.limits import ProviderLimiter


class ProviderLimit(Protocol):
    """Admission of one model call of about ``tokens`` tokens, across every process: the
    gate its client passes each attempt through (retries too), or None to admit at once."""

    def gate(self, tokens: int) -> ProviderTurn | None: ...


class NoProviderLimit:
    """Admits every call at once."""

    def gate(self, tokens: int) -> ProviderTurn | None:
        return None


def estimated_tokens(text: str) -> int:
    """A call's size before it is made: about four characters a token."""
    return max(1, len(text) // 4)


class ProfileLimit:
    """A generator profile's provider limit, for an extractor calling the same model."""

    def __init__(self, limiter: ProviderLimiter, name: str, profile: GeneratorProfile) -> None:
        self.limiter, self.name, self.profile = limiter, name, profile

    def gate(self, tokens: int) -> ProviderTurn:
        return ProviderTurn(self.limiter, self.name, self.profile, tokens)


def provider_limit(
    limiter: ProviderLimiter | None, settings: Settings, model: str
) -> ProviderLimit | None:
    """The limit of the first OpenAI profile naming ``model`` with an RPM or TPM, if any."""
    if limiter is None:
        return None
    for name, profile in settings.profiles.items():
        if profile.backend == "openai" and profile.model == model and limiter.limited(name):
            return ProfileLimit(limiter, name, profile)
    return None
