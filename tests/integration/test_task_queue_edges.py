"""Workers: a reaped task keeps its queue place; a completed task shows no stale error;
no server path reaches a client-visible error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from genkeep.config import Settings
from genkeep.db.jobs import Audit
from genkeep.db.tasks import Submission
from genkeep.services import Services
from genkeep.worker.runner import Worker
from tests.support.services import opened_services

AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")
OWNER = "alice"


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    async with opened_services(
        settings, tmp_path, task_poll_s=0.05, task_backoff_base_s=0.05, task_max_attempts=3
    ) as opened:
        yield opened


def submission(kind: str, key: str, **payload: object) -> Submission:
    return Submission(kind, dict(payload), key, max_attempts=3, timeout=timedelta(minutes=5))


async def _finished(services: Services, task_id: str) -> Any:
    for _ in range(1000):
        task = await services.tasks.get(OWNER, task_id)
        if task is not None and task.status in ("completed", "failed", "cancelled"):
            return task
        await asyncio.sleep(0.02)
    raise AssertionError("task did not finish")


async def test_a_reaped_task_runs_before_tasks_submitted_after_it(services: Services) -> None:
    job = await services.jobs.create(OWNER, {"title": "Queue"}, AUDIT)
    first, _ = await services.tasks.submit(job, submission("noop", "first"), AUDIT)
    [(claimed, _)] = await services.tasks.claim("dies", 0.1, 1)
    assert claimed.id == first.id
    later = []
    for index in range(5):
        task, _ = await services.tasks.submit(job, submission("noop", f"later-{index}"), AUDIT)
        later.append(task.id)
    await asyncio.sleep(0.2)
    assert await services.tasks.reap_expired() == 1
    # One at a time: each claim takes the task first in line (a batch returns no order).
    order = [(await services.tasks.claim("next", 30, 1))[0][0].id for _ in range(6)]
    assert order == [first.id, *later]


@pytest.mark.parametrize("kind", ["flaky", "fails-once-with-artifact"])
async def test_a_completed_task_shows_no_stale_error(services: Services, kind: str) -> None:
    job = await services.jobs.create(OWNER, {"title": "Stale"}, AUDIT)
    task, _ = await services.tasks.submit(job, submission(kind, "s", succeed_on=2), AUDIT)
    worker = Worker(services)
    running = asyncio.create_task(worker.run())
    try:
        done = await _finished(services, task.id)
    finally:
        worker.stop()
        await running
    assert done.status == "completed" and done.attempts == 2
    assert done.error is None
    events = await services.jobs.events(OWNER, job.id)
    retried = [e.payload["error"] for e in events if e.event_type == "task.retry_scheduled"]
    assert len(retried) == 1 and retried[0].startswith("RuntimeError: ")


async def test_no_server_path_reaches_a_task_error(services: Services) -> None:
    job = await services.jobs.create(OWNER, {"title": "Paths"}, AUDIT)
    plain, _ = await services.tasks.submit(
        job,
        Submission("leaks-a-path", {}, "p1", max_attempts=1, timeout=timedelta(minutes=1)),
        AUDIT,
    )
    oserror, _ = await services.tasks.submit(
        job,
        Submission(
            "leaks-a-path", {"os": True}, "p2", max_attempts=1, timeout=timedelta(minutes=1)
        ),
        AUDIT,
    )
    worker = Worker(services)
    running = asyncio.create_task(worker.run())
    try:
        failed = [await _finished(services, plain.id), await _finished(services, oserror.id)]
    finally:
        worker.stop()
        await running
    assert failed[0].error == "RuntimeError: cannot read <path>: denied"
    assert failed[1].error == "FileNotFoundError: No such file or directory"
    events = await services.jobs.events(OWNER, job.id)
    assert all("/srv" not in str(e.payload) for e in events)
