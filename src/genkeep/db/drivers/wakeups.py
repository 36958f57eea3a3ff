"""Worker wake-ups: the driver's LISTEN where it has one, the process's own event always.

Polling stays as the fallback either way, so a lost notification only delays a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from genkeep.db.drivers.base import TASKS_CHANNEL, Driver, Listener

log = logging.getLogger(__name__)

NOTIFY_SETTLE_S = 0.003


class Wakeups:
    """An event set when new tasks may be claimable."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._event = asyncio.Event()
        self._local = False
        self._listener: Listener | None = None

    def notify_local(self) -> None:
        self._local = True
        self._event.set()

    async def start(self) -> None:
        try:
            self._listener = await self.driver.listen(TASKS_CHANNEL, self._on_notify)
        except Exception as exc:  # polling still works; say why wake-ups are slower
            log.warning("LISTEN %s failed (%s); falling back to polling", TASKS_CHANNEL, exc)
            self._listener = None

    def _on_notify(self, _payload: str) -> None:
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
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
