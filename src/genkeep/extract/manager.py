"""The run manager (I13): every active run is a task of one asyncio TaskGroup.

- ``start`` refuses a run id that is already active (``RunActive``, 409);
- ``cancel`` asks a run to stop at its next batch boundary (it ends "cancelled", resumable);
- ``await_all`` waits for the runs active now; ``await_empty`` until none is active at all;
- ``active_run_count`` is exact: a run leaves the registry when its task ends;
- leaving the ``async with`` block (shutdown) cancels every run at its batch boundary and
  waits, so each releases its lease; a process killed outright leaves leases that expire.

A failing run is logged and recorded by the runner; it never cancels its siblings, which
a bare TaskGroup would do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from genkeep.errors import RunActive

log = logging.getLogger(__name__)

RunBody = Callable[[asyncio.Event], Awaitable[object]]


class RunManager:
    def __init__(self) -> None:
        self._group: asyncio.TaskGroup | None = None
        self._active: dict[str, tuple[asyncio.Task[object], asyncio.Event]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> RunManager:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for _, cancel in self._active.values():
            cancel.set()
        assert self._group is not None
        await self._group.__aexit__(kind, exc, tb)
        self._group = None

    @property
    def active_run_count(self) -> int:
        return len(self._active)

    def is_active(self, run_id: str) -> bool:
        return run_id in self._active

    def start(self, run_id: str, body: RunBody) -> asyncio.Task[object]:
        """Run ``body(cancel_event)`` as the run ``run_id``; RunActive if it is running here."""
        if self._group is None:
            raise RuntimeError("use the run manager inside `async with`")
        if run_id in self._active:
            raise RunActive(f"run {run_id} is already active")
        cancel = asyncio.Event()
        task = self._group.create_task(self._guard(run_id, body, cancel), name=f"run:{run_id}")
        self._active[run_id] = (task, cancel)
        self._idle.clear()
        return task

    async def _guard(self, run_id: str, body: RunBody, cancel: asyncio.Event) -> object:
        try:
            return await body(cancel)
        except Exception:
            log.exception("run %s failed", run_id)
            return None
        finally:
            self._active.pop(run_id, None)
            if not self._active:
                self._idle.set()

    def cancel(self, run_id: str) -> bool:
        """Ask a run to stop at its next batch boundary; False if it is not active here."""
        found = self._active.get(run_id)
        if found is None:
            return False
        found[1].set()
        return True

    async def await_all(self) -> None:
        """Wait for every run active at the time of the call."""
        tasks = [task for task, _ in self._active.values()]
        if tasks:
            await asyncio.wait(tasks)

    async def await_empty(self) -> None:
        """Wait until no run is active, including runs started while waiting."""
        await self._idle.wait()
