"""A task's change log (``task_changes``, written by triggers) and wake-ups when it grows.

The task event stream replays the log from a client's ``Last-Event-ID``, so a change made
between two reads is never lost; on PostgreSQL the trigger's NOTIFY wakes the stream at
once, elsewhere (and if LISTEN fails) the stream polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy import delete, select

from genkeep.db.database import Database
from genkeep.db.dialect import TASK_CHANGES_CHANNEL
from genkeep.db.models import TaskChange, TaskWatcher
from genkeep.db.types import utcnow

log = logging.getLogger(__name__)


class TaskChanges:
    def __init__(self, database: Database) -> None:
        self.db = database
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._connection: Any = None
        self._listening: asyncio.Task[None] | None = None

    async def after(
        self, owner_id: str, task_id: str, seq: int = 0, limit: int = 200
    ) -> list[TaskChange]:
        """The task's changes after ``seq``, oldest first."""
        query = (
            select(TaskChange)
            .where(
                TaskChange.owner_id == owner_id,
                TaskChange.task_id == task_id,
                TaskChange.seq > seq,
            )
            .order_by(TaskChange.seq)
            .limit(limit)
        )
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    @contextlib.asynccontextmanager
    async def watch(self, task_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever ``task_id`` changes (PostgreSQL); the caller clears it.

        Listening starts before the watch is registered, and the caller reads the log after
        both: a change committed later is notified; one committed earlier is in the log.
        """
        await self._listen()
        changed = asyncio.Event()
        self._waiters.setdefault(task_id, set()).add(changed)
        watcher = await self._register(task_id)
        try:
            yield changed
        finally:
            waiting = self._waiters.get(task_id, set())
            waiting.discard(changed)
            if not waiting:
                self._waiters.pop(task_id, None)
            if watcher is not None:
                await asyncio.shield(self._unregister(task_id, watcher))

    async def _register(self, task_id: str) -> str | None:
        if self._connection is None:  # not listening: nothing would hear a NOTIFY
            return None
        watcher = str(uuid.uuid4())
        async with self.db.transaction() as session:
            session.add(TaskWatcher(task_id=task_id, watcher_id=watcher, created_at=utcnow()))
        return watcher

    async def _unregister(self, task_id: str, watcher: str) -> None:
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    delete(TaskWatcher).where(
                        TaskWatcher.task_id == task_id, TaskWatcher.watcher_id == watcher
                    )
                )
        except Exception:  # the row only costs stray wake-ups of this task
            log.warning("could not unregister the watch of task %s", task_id, exc_info=True)

    async def _listen(self) -> None:
        if self.db.backend != "postgresql":
            return
        if self._listening is None:  # one LISTEN connection per process, opened on first use
            self._listening = asyncio.ensure_future(self._connect())
        await asyncio.shield(self._listening)

    async def _connect(self) -> None:
        dsn = self.db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._connection = await asyncpg.connect(dsn)
            await self._connection.add_listener(TASK_CHANGES_CHANNEL, self._on_notify)
        except Exception as exc:  # streams still poll; say why they are slower
            log.warning("LISTEN %s failed (%s); streams poll", TASK_CHANGES_CHANNEL, exc)
            self._connection = None

    def _on_notify(self, _connection: object, _pid: int, _channel: str, task_id: str) -> None:
        for changed in self._waiters.get(task_id, ()):
            changed.set()

    async def stop(self) -> None:
        if self._listening is not None:
            with contextlib.suppress(Exception):
                await self._listening
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
        self._listening = None
