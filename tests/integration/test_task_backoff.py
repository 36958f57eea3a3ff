"""Retry backoff on SQLite and PostgreSQL: base × 2^(attempt−1), capped (docs/jobs.md, Tasks).

A failed attempt k is queued again with ``run_after`` = its failure + that delay, so the
next attempt cannot start before it. The gaps are read back from the job's events
(``task.retry_scheduled`` of attempt k, ``task.started`` of attempt k+1) and the row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from genkeep.config import Settings
from genkeep.db.tasks import Submission
from genkeep.services import Services
from genkeep.worker.runner import Worker
from tests.integration.test_tasks import AUDIT, OWNER, finished, new_job
from tests.support.services import opened_services

BASE_S = 0.25


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    async with opened_services(
        settings,
        tmp_path,
        task_poll_s=0.02,  # small next to every delay, so the gaps measure the backoff
        task_backoff_base_s=BASE_S,
        task_backoff_max_s=60.0,
    ) as opened:
        yield opened


@dataclass(frozen=True)
class History:
    failed_at: dict[int, datetime]  # attempt -> its task.retry_scheduled event
    started_at: dict[int, datetime]  # attempt -> its task.started event
    run_after: datetime  # the row's run_after after the last scheduled retry
    attempts: int
    status: str

    def gap(self, attempt: int) -> float:
        """Seconds from attempt ``attempt`` failing to the next attempt starting."""
        return (self.started_at[attempt + 1] - self.failed_at[attempt]).total_seconds()


async def _always_failing(services: Services, key: str, max_attempts: int) -> History:
    job = await new_job(services)
    flaky = Submission("flaky", {}, key, max_attempts=max_attempts, timeout=timedelta(minutes=5))
    task, _ = await services.tasks.submit(job, flaky, AUDIT)
    worker = Worker(services, concurrency=1)
    running = asyncio.create_task(worker.run())
    try:
        done = await finished(services, task.id)
    finally:
        worker.stop()
        await running
    failed_at: dict[int, datetime] = {}
    started_at: dict[int, datetime] = {}
    for event in await services.jobs.events(OWNER, job.id):
        if event.payload.get("task_id") != task.id:
            continue
        attempt = int(event.payload.get("attempt", 0))
        if event.event_type == "task.retry_scheduled":
            failed_at[attempt] = event.created_at
        elif event.event_type == "task.started":
            started_at[attempt] = event.created_at
    return History(failed_at, started_at, done.run_after, done.attempts, done.status)


async def test_backoff_doubles_with_each_attempt(services: Services) -> None:
    history = await _always_failing(services, "doubling", max_attempts=4)
    assert history.status == "failed" and history.attempts == 4
    assert sorted(history.failed_at) == [1, 2, 3]  # the 4th failure is final: no retry
    assert sorted(history.started_at) == [1, 2, 3, 4]
    expected = {k: BASE_S * 2 ** (k - 1) for k in (1, 2, 3)}  # 0.25, 0.5, 1.0 s
    gaps = {k: history.gap(k) for k in (1, 2, 3)}
    for k, delay in expected.items():
        # Never before run_after (a little is lost between scheduling and the event's
        # timestamp); the upper bound only allows for polling and a loaded machine.
        assert delay * 0.8 <= gaps[k] <= delay + 3.0, (k, gaps)
    assert gaps[1] < gaps[2] < gaps[3], gaps
    # The last retry's run_after, as stored: about base × 2^2 after its failure, never more.
    last = (history.run_after - history.failed_at[3]).total_seconds()
    assert expected[3] * 0.8 <= last <= expected[3] + 0.01, last


async def test_backoff_is_capped(services: Services) -> None:
    cap = 0.3  # the second delay would be 0.5 s uncapped
    services.settings = services.settings.model_copy(update={"task_backoff_max_s": cap})
    history = await _always_failing(services, "capped", max_attempts=3)
    assert history.status == "failed" and history.attempts == 3
    assert sorted(history.failed_at) == [1, 2]
    first = history.gap(1)
    assert BASE_S * 0.8 <= first <= BASE_S + 3.0, first
    last = (history.run_after - history.failed_at[2]).total_seconds()
    assert cap * 0.8 <= last <= cap + 0.01, last
    assert history.gap(2) >= cap * 0.8
