"""The text of one generation as it is produced, read by every request that shares it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class Feed:
    """Pieces kept from the first, so a reader that comes late still reads all of them."""

    def __init__(self, result_id: str | None = None) -> None:
        # The id the result will be stored under, and the model the pieces came from: a
        # stream shows them before the result exists.
        self.result_id = result_id
        self.model: str | None = None
        self._pieces: list[str] = []
        self._closed = False
        self._changed = asyncio.Event()

    def push(self, piece: str, model: str) -> None:
        self.model = self.model or model
        self._pieces.append(piece)
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        # A fresh event per change: readers waiting on the old one all wake, none misses one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def started(self) -> bool:
        """Wait for the first piece; False when the feed closed without one (a failure)."""
        while not self._pieces and not self._closed:
            await self._changed.wait()
        return bool(self._pieces)

    async def read(self) -> AsyncIterator[str]:
        """Every piece in order, waiting for new ones until the feed is closed."""
        index = 0
        while True:
            while index < len(self._pieces):
                yield self._pieces[index]
                index += 1
            if self._closed:
                return
            await self._changed.wait()
