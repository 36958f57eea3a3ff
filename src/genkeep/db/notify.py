"""Worker wake-ups: LISTEN/NOTIFY on PostgreSQL, an in-process event on SQLite.

Polling stays as the fallback either way, so a lost notification only delays a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from genkeep.db.database import Database
from genkeep.db.dialect import TASKS_CHANNEL
from genkeep.db.url import libpq_dsn

log = logging.getLogger(__name__)

NOTIFY_SETTLE_S = 0.003


class Wakeups:
    """An event set when new tasks may be claimable."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self._event = asyncio.Event()
        self._local = False
        self._connection: Any = None

    def notify_local(self) -> None:
        self._local = True
        self._event.set()

    async def start(self) -> None:
        if self.db.backend != "postgresql":
            return
        dsn = libpq_dsn(self.db.url)
        try:
            self._connection = await asyncpg.connect(dsn)
            await self._connection.add_listener(TASKS_CHANNEL, self._on_notify)
        except Exception as exc:  # polling still works; say why wake-ups are slower
            log.warning("LISTEN %s failed (%s); falling back to polling", TASKS_CHANNEL, exc)
            self._connection = None

    def _on_notify(self, *_: object) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Return when woken or after ``seconds``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
            if not self._local:
                # Every listening worker hears every NOTIFY. Settling a moment lets one claim
                # take the tasks that arrive meanwhile, instead of one query per worker per task.
                await asyncio.sleep(NOTIFY_SETTLE_S)
        self._event.clear()
        self._local = False

    async def stop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
