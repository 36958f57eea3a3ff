"""Worker wake-ups across connections: LISTEN/NOTIFY, and polling when LISTEN cannot start.

PostgreSQL only. On SQLite a worker is woken by an in-process event (``notify_local``), so a
task submitted through another ``Services`` (another connection, as another process would)
is only ever found by polling there: there is no cross-connection wake-up to test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from genkeep.config import Settings
from genkeep.db.drivers import postgresql as pg_driver
from genkeep.db.drivers import wakeups
from genkeep.db.drivers.base import TASKS_CHANNEL
from genkeep.db.models import Task
from genkeep.db.tasks import Lease
from genkeep.services import Services
from genkeep.worker.runner import Worker
from tests.integration.test_tasks import AUDIT, OWNER, new_job, submission, until
from tests.support.services import opened_services

# SQLite wakes workers in-process only (see the module docstring): run on PostgreSQL alone.
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

ServicesFactory = Callable[..., Awaitable[Services]]
FALLBACK = "falling back to polling"


@pytest.fixture
async def make_services(settings: Settings, tmp_path: Path) -> AsyncIterator[ServicesFactory]:
    """Open independent Services on the test's database: each has its own pool and wake-ups."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: object) -> Services:
            return await stack.enter_async_context(opened_services(settings, tmp_path, **overrides))

        yield make


async def _run_from_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
    worker_services: Services,
    submitter: Services,
    worker: Worker,
    within: float,
) -> tuple[Task, float]:
    """Submit a task through ``submitter`` once ``worker`` is idle; wait for it to finish."""
    claims = 0
    claim = worker_services.tasks.claim

    async def counted(worker_id: str, lease_s: float, limit: int) -> list[tuple[Task, Lease]]:
        nonlocal claims
        found = await claim(worker_id, lease_s, limit)
        claims += 1
        return found

    monkeypatch.setattr(worker_services.tasks, "claim", counted)
    running = asyncio.create_task(worker.run())
    try:

        async def idle() -> bool:
            return claims >= 1  # LISTEN (or its failure) comes first, then an empty claim

        await until(idle)
        await asyncio.sleep(0.2)  # well into the worker's wait
        job = await new_job(submitter)
        task, created = await submitter.tasks.submit(job, submission("noop", "elsewhere"), AUDIT)
        assert created
        loop = asyncio.get_running_loop()
        submitted_at = loop.time()

        async def done() -> bool:
            found = await submitter.tasks.get(OWNER, task.id)
            return found is not None and found.status == "completed"

        await until(done, seconds=within)
        elapsed = loop.time() - submitted_at
    finally:
        worker.stop()
        await running
    finished = await submitter.tasks.get(OWNER, task.id)
    assert finished is not None
    return finished, elapsed


async def test_notify_from_another_connection_wakes_a_polling_worker(
    make_services: ServicesFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Polling every 30 s, reaping every 30 s (a third of the lease): within 10 s only a
    # NOTIFY from the other connection can wake the worker.
    slow = {"task_poll_s": 30.0, "task_lease_s": 90.0}
    worker_services = await make_services(**slow)
    submitter = await make_services(**slow)
    worker = Worker(worker_services, worker_id="listener", concurrency=1)
    with caplog.at_level(logging.WARNING, logger=wakeups.__name__):
        task, elapsed = await _run_from_elsewhere(
            monkeypatch, worker_services, submitter, worker, within=10
        )
    assert elapsed < 10, f"picked up after {elapsed:.1f}s: polled, not woken"
    assert task.status == "completed" and task.worker_id == "listener" and task.attempts == 1
    assert not [r for r in caplog.records if FALLBACK in r.getMessage()]


async def test_worker_polls_when_listen_cannot_start(
    make_services: ServicesFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[str] = []

    async def refuse(dsn: str, *args: object, **kwargs: object) -> object:
        attempts.append(dsn)
        raise ConnectionRefusedError("LISTEN connection refused by the test")

    # Only the wake-up listener's connect fails; the pools connect their own way.
    monkeypatch.setattr(pg_driver, "_listen_connection", refuse)
    quick = {"task_poll_s": 0.2, "task_lease_s": 30.0}
    worker_services = await make_services(**quick)
    submitter = await make_services(**quick)
    worker = Worker(worker_services, worker_id="poller", concurrency=1)
    with caplog.at_level(logging.WARNING, logger=wakeups.__name__):
        task, _ = await _run_from_elsewhere(
            monkeypatch, worker_services, submitter, worker, within=10
        )
    assert task.status == "completed" and task.worker_id == "poller" and task.attempts == 1
    assert len(attempts) == 1  # the listener was tried, and failed
    [warning] = [r for r in caplog.records if FALLBACK in r.getMessage()]
    assert warning.levelno == logging.WARNING and warning.name == wakeups.__name__
    message = warning.getMessage()
    assert f"LISTEN {TASKS_CHANNEL} failed" in message
    assert "LISTEN connection refused by the test" in message
