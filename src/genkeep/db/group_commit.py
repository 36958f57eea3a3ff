"""Group commit: writes that arrive while one is in flight ride the next one together.

The first write goes at once, so an idle caller waits for nothing; under load, one
statement (one round trip, one commit, one flush of the WAL) carries many callers' rows.
Each caller still returns only after its own row is committed, with its own outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

# A write's outcome per item: its result, or the error that item alone failed with.
WriteMany = Callable[[list[In]], Awaitable[list[Out | Exception]]]


class GroupCommit(Generic[In, Out]):
    """Runs ``write_many`` on batches of at most ``max_batch`` items, one batch at a time."""

    def __init__(self, write_many: WriteMany[In, Out], max_batch: int = 100) -> None:
        self._write_many = write_many
        self._max_batch = max_batch
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, item: In) -> Out:
        """The item's outcome once its batch has committed."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Out] = loop.create_future()
        self._pending.append((item, outcome))
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not loop:
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        # Shielded: a caller cancelled now does not cut its neighbours' statement short.
        return await asyncio.shield(outcome)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._write_many([item for item, _ in batch])
            except Exception as exc:
                log.debug("a batch of %d writes failed: %r", len(batch), exc)
                results = [exc] * len(batch)
            for (_, outcome), result in zip(batch, results, strict=True):
                if outcome.done():
                    continue
                if isinstance(result, Exception):
                    outcome.set_exception(result)
                else:
                    outcome.set_result(result)
