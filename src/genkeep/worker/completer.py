"""Group commit of a worker's task completions (as River's batch completer does).

The first completion is written at once; those that finish while that write is in flight
ride the next one together. A busy worker so pays one statement for many tasks, an idle
one waits for nothing. Every task stays fenced by its own lease. Given a ``Refill``, the
same statement claims tasks for the slots free at that moment, so a busy worker's whole
cycle (complete, claim) is one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from genkeep.db.models import Task
from genkeep.db.tasks import Lease, TaskStore
from genkeep.errors import LeaseLost

log = logging.getLogger(__name__)

MAX_BATCH = 100


class Refill(Protocol):
    """The worker whose free slots a completion's statement may fill."""

    worker_id: str
    lease_s: float

    def reserve(self) -> int:
        """Reserve the free slots; how many."""

    def hand_over(self, claimed: list[tuple[Task, Lease]], reserved: int) -> None:
        """Start the tasks claimed into ``reserved`` slots; the rest are free again."""


class Completer:
    """Commits completions (tasks without artifacts) in batches; one per worker."""

    def __init__(self, tasks: TaskStore, refill: Refill | None = None) -> None:
        self.tasks = tasks
        self.refill = refill
        self._pending: list[tuple[Lease, dict[str, Any], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def complete(self, lease: Lease, result: dict[str, Any]) -> None:
        """Return once the completion is committed; LeaseLost if it was fenced out."""
        committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((lease, result, committed))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="task-completer")
        # Shielded: a caller cancelled now still has its completion written by the flusher.
        if not await asyncio.shield(committed):
            raise LeaseLost(f"lease on task {lease.task_id} was taken over; nothing committed")

    async def _flush(self) -> None:
        # Handlers that return in the same turn of the event loop (a claim's tasks started
        # together) join this first batch: one round trip for them, not one for the first.
        await asyncio.sleep(0)
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            completions = [(lease, result) for lease, result, _ in batch]
            refill = self.refill
            reserved = refill.reserve() if refill is not None else 0
            claimed: list[tuple[Task, Lease]] = []
            try:
                if refill is not None and reserved > 0:
                    outcomes, claimed = await self.tasks.complete_and_claim(
                        completions, refill.worker_id, refill.lease_s, reserved
                    )
                else:
                    outcomes = await self.tasks.complete_many(completions)
            except Exception as exc:
                log.warning("completing %d tasks failed: %s", len(batch), exc)
                for _, _, committed in batch:
                    if not committed.done():
                        committed.set_exception(exc)
                continue
            finally:
                if refill is not None:
                    refill.hand_over(claimed, reserved)
            for (_, _, committed), outcome in zip(batch, outcomes, strict=True):
                if not committed.done():
                    committed.set_result(outcome)
