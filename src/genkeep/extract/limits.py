"""The provider limit an extractor's model calls pass: one seam, no limit by default.

The shared, database-backed limiter (a token bucket per provider profile, I16) plugs in
here; until it is wired, ``NoProviderLimit`` admits every call at once.
"""

from __future__ import annotations

from typing import Protocol


class ProviderLimit(Protocol):
    """Admission of one model call of about ``tokens`` tokens, across every process."""

    async def acquire(self, tokens: int) -> None: ...


class NoProviderLimit:
    """Admits every call at once."""

    async def acquire(self, tokens: int) -> None:
        return None


def estimated_tokens(text: str) -> int:
    """A call's size before it is made: about four characters a token."""
    return max(1, len(text) // 4)
