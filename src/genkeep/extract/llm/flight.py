"""Single flight of the LLM extractor's calls: of the extractors (in any worker process)
asking one uncached prompt at once, one leads and calls the model, the others wait for its
answer in the cache. A leader that dies stops renewing its lease; a waiter then leads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

log = logging.getLogger(__name__)


class LlmCache(Protocol):
    """Valid LLM answers by request key, and the flights asking the model for them."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, answer: str) -> None: ...

    async def lookup(self, key: str) -> tuple[str | None, bool]:
        """The stored answer, and whether another extractor is asking for one now."""
        ...

    async def claim(self, key: str, token: str, lease_s: float) -> bool: ...

    async def renew(self, key: str, token: str, lease_s: float) -> bool: ...

    async def land(self, key: str, token: str) -> None: ...


class MemoryLlmCache:
    """An ``LlmCache`` in a dict: tests, and one-off runs (flights of this process only)."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.flights: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.answers.get(key)

    async def put(self, key: str, answer: str) -> None:
        self.answers[key] = answer

    async def lookup(self, key: str) -> tuple[str | None, bool]:
        return self.answers.get(key), key in self.flights

    async def claim(self, key: str, token: str, lease_s: float) -> bool:
        return self.flights.setdefault(key, token) == token

    async def renew(self, key: str, token: str, lease_s: float) -> bool:
        return self.flights.get(key) == token

    async def land(self, key: str, token: str) -> None:
        if self.flights.get(key) == token:
            del self.flights[key]


@contextlib.asynccontextmanager
async def leading(cache: LlmCache, key: str, token: str, lease_s: float) -> AsyncIterator[None]:
    """The lead of a claimed flight: its lease renewed meanwhile, and landed at the end."""
    heartbeat = asyncio.create_task(_renew(cache, key, token, lease_s))
    try:
        yield
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        try:
            await asyncio.shield(cache.land(key, token))
        except Exception:
            # Its lease ends on its own: a waiter then leads.
            log.exception("could not land the LLM call in flight for %s", key[:12])


async def _renew(cache: LlmCache, key: str, token: str, lease_s: float) -> None:
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            if not await cache.renew(key, token, lease_s):
                return  # taken over: the other leader's answer is as good as this one's
        except Exception:
            log.exception("renewing the LLM call in flight for %s failed; retrying", key[:12])
