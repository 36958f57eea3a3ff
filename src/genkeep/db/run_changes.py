"""A run's change log (``run_changes``, written by triggers), read by the run event stream."""

from __future__ import annotations

from genkeep.db.change_feed import ChangeFeed
from genkeep.db.drivers.base import RUN_CHANGES_CHANNEL
from genkeep.db.models import RunChange, RunWatcher

# A run that is not running: its stream ends (a resume opens a new one).
RUN_STOPPED = ("completed", "failed", "cancelled")


class RunChanges(ChangeFeed[RunChange]):
    table = RunChange
    watcher = RunWatcher
    key = "run_id"
    channel = RUN_CHANGES_CHANNEL
