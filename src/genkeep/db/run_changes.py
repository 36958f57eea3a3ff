"""A run's change log (``run_changes``, written by triggers), read by the run event stream."""

from __future__ import annotations

from sqlalchemy import select

from genkeep.db.change_feed import ChangeFeed
from genkeep.db.dialect import RUN_CHANGES_CHANNEL
from genkeep.db.models import RunChange, RunWatcher

# A run that is not running: its stream ends (a resume opens a new one).
RUN_STOPPED = ("completed", "failed", "cancelled")


class RunChanges(ChangeFeed):
    watcher = RunWatcher
    key = "run_id"
    channel = RUN_CHANGES_CHANNEL

    async def after(
        self, owner_id: str, run_id: str, seq: int = 0, limit: int = 200
    ) -> list[RunChange]:
        """The run's changes after ``seq``, oldest first."""
        query = (
            select(RunChange)
            .where(RunChange.owner_id == owner_id, RunChange.run_id == run_id, RunChange.seq > seq)
            .order_by(RunChange.seq)
            .limit(limit)
        )
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())
