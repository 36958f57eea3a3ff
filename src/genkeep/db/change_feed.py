"""A change log written by triggers (``task_changes``, ``run_changes``) and wake-ups when it grows.

An event stream replays the log from a client's ``Last-Event-ID``, so a change made between
two reads is never lost; where the driver listens, the trigger's notification wakes the
stream at once, elsewhere (and if listening fails) the stream polls. The log is written by
whichever process commits the change, so a stream follows work done in any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from sqlalchemy import delete, select

from genkeep.db.database import Database
from genkeep.db.drivers.base import Listener
from genkeep.db.types import utcnow

log = logging.getLogger(__name__)
C = TypeVar("C")  # a row of the log


class ChangeFeed(Generic[C]):
    """One change log: ``table`` holds it, ``watcher`` its table of open streams (both
    keyed by ``key``, the watched row's id), ``channel`` the NOTIFY channel its trigger
    sends on."""

    table: Any
    watcher: Any
    key: str
    channel: str

    def __init__(self, database: Database) -> None:
        self.db = database
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: Listener | None = None
        self._listening: asyncio.Task[None] | None = None

    async def after(self, owner_id: str, item_id: str, seq: int = 0, limit: int = 200) -> list[C]:
        """The item's changes after ``seq``, oldest first."""
        query = (
            select(self.table)
            .where(
                self.table.owner_id == owner_id,
                getattr(self.table, self.key) == item_id,
                self.table.seq > seq,
            )
            .order_by(self.table.seq)
            .limit(limit)
        )
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    @contextlib.asynccontextmanager
    async def watch(self, item_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever ``item_id`` changes (where the driver listens); the caller
        clears it.

        Listening starts before the watch is registered, and the caller reads the log after
        both: a change committed later is notified; one committed earlier is in the log.
        """
        await self._listen()
        changed = asyncio.Event()
        self._waiters.setdefault(item_id, set()).add(changed)
        watcher = await self._register(item_id)
        try:
            yield changed
        finally:
            waiting = self._waiters.get(item_id, set())
            waiting.discard(changed)
            if not waiting:
                self._waiters.pop(item_id, None)
            if watcher is not None:
                await asyncio.shield(self._unregister(item_id, watcher))

    async def _register(self, item_id: str) -> str | None:
        if self._listener is None:  # not listening: nothing would hear a notification
            return None
        watcher = str(uuid.uuid4())
        row = {self.key: item_id, "watcher_id": watcher, "created_at": utcnow()}
        try:
            async with self.db.transaction() as session:
                session.add(self.watcher(**row))
        except Exception as exc:
            if not self.db.driver.is_unavailable(exc):
                raise
            # Writes refused (a read-only standby): the stream still polls, only slower.
            log.warning(
                "could not register the watch of %s (%s); polling", item_id, type(exc).__name__
            )
            return None
        return watcher

    async def _unregister(self, item_id: str, watcher: str) -> None:
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    delete(self.watcher).where(
                        getattr(self.watcher, self.key) == item_id,
                        self.watcher.watcher_id == watcher,
                    )
                )
        except Exception:  # the row only costs stray wake-ups of this item
            log.warning("could not unregister the watch of %s", item_id, exc_info=True)

    async def _listen(self) -> None:
        if self._listening is None:  # one LISTEN connection per feed and process, on first use
            self._listening = asyncio.ensure_future(self._connect())
        await asyncio.shield(self._listening)

    async def _connect(self) -> None:
        try:
            self._listener = await self.db.driver.listen(self.channel, self._on_notify)
        except Exception as exc:  # streams still poll; say why they are slower
            log.warning("LISTEN %s failed (%s); streams poll", self.channel, exc)
            self._listener = None

    def _on_notify(self, item_id: str) -> None:
        for changed in self._waiters.get(item_id, ()):
            changed.set()

    async def stop(self) -> None:
        if self._listening is not None:
            with contextlib.suppress(Exception):
                await self._listening
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        self._listening = None
