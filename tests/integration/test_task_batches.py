"""Batched statements of the task queue keep each task's guarantees, on SQLite and PostgreSQL:
concurrent submissions share one statement on PostgreSQL (a group commit) yet keep their own
idempotency (I4), owner and outcome; a worker's completions and next claim share one, each
completion fenced by its own lease."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from genkeep.config import Settings
from genkeep.db.jobs import Audit
from genkeep.db.models import Job, Task
from genkeep.db.tasks import Submission
from genkeep.errors import IdempotencyMismatch
from genkeep.services import Services
from genkeep.worker.runner import Worker
from tests.support.handlers import GAUGE
from tests.support.services import opened_services

AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    async with opened_services(settings, tmp_path) as opened:
        yield opened


def submission(key: str, **payload: object) -> Submission:
    return Submission("noop", dict(payload), key, max_attempts=3, timeout=timedelta(minutes=5))


async def test_duplicates_in_one_batch_create_one_task_per_key(services: Services) -> None:
    alice = await services.jobs.create("alice", {"title": "A"}, AUDIT)
    bob = await services.jobs.create("bob", {"title": "B"}, AUDIT)
    # One call goes at once; the other 60 arrive while it is in flight and share a batch,
    # duplicates of each other included. Bob's "k0" is his own key, not Alice's.
    calls: list[tuple[Job, str, dict[str, object]]] = [(alice, f"k{n % 10}", {}) for n in range(40)]
    calls += [(bob, "k0", {})] * 5 + [(alice, "clash", {"a": 1}), (alice, "clash", {"a": 2})]
    calls += [(alice, f"k{n % 10}", {}) for n in range(14)]
    outcomes = await asyncio.gather(
        *(
            services.tasks.submit(job, submission(key, **payload), AUDIT)
            for job, key, payload in calls
        ),
        return_exceptions=True,
    )
    by_key: dict[tuple[str, str], set[str]] = {}
    created: Counter[tuple[str, str]] = Counter()
    mismatches = 0
    for (job, key, _), outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, IdempotencyMismatch):
            mismatches += 1
            continue
        assert not isinstance(outcome, BaseException), outcome
        task, new = outcome
        assert (task.owner_id, task.job_id, task.idempotency_key) == (job.owner_id, job.id, key)
        by_key.setdefault((job.owner_id, key), set()).add(task.id)
        created[(job.owner_id, key)] += new
    assert mismatches == 1  # the second request under "clash" differs from the first
    assert all(len(ids) == 1 for ids in by_key.values())
    assert set(created.values()) == {1}  # exactly one call per key created its task
    assert len(by_key) == 12  # alice k0..k9 and clash, bob k0
    for job, count in ((alice, 11), (bob, 1)):
        events = await services.jobs.events(job.owner_id, job.id)
        queued = [e.payload["task_id"] for e in events if e.event_type == "task.queued"]
        assert len(queued) == len(set(queued)) == count
    clash = next(iter(by_key[("alice", "clash")]))
    stored = await services.tasks.get("alice", clash)
    assert stored is not None and stored.status == "queued"
    assert await services.tasks.get("bob", clash) is None  # owner isolation (I3)


async def test_a_refused_row_fails_only_its_own_submission(services: Services) -> None:
    job = await services.jobs.create("alice", {"title": "A"}, AUDIT)
    gone = Job(id="00000000-0000-0000-0000-000000000000", owner_id="alice")  # no such job
    calls = [job] * 10 + [gone] + [job] * 10
    outcomes = await asyncio.gather(
        *(services.tasks.submit(j, submission(f"r{n}"), AUDIT) for n, j in enumerate(calls)),
        return_exceptions=True,
    )
    refused = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
    assert refused == [10]
    for outcome in outcomes[:10] + outcomes[11:]:
        assert not isinstance(outcome, BaseException)
        task, created = outcome
        assert created
        stored: Task | None = await services.tasks.get("alice", task.id)
        assert stored is not None and stored.status == "queued"


async def test_a_worker_runs_at_most_concurrency_handlers_at_once(
    services: Services, tmp_path: Path
) -> None:
    # A handler's slot is freed before its completion commits, so the next claim overlaps
    # that commit; the slots still bound the handlers running, and every result commits.
    job = await services.jobs.create("alice", {"title": "A"}, AUDIT)
    GAUGE.update(now=0, most=0)
    submitted = [
        (
            await services.tasks.submit(
                job,
                Submission("gauge", {"sleep_s": 0.005}, f"g{n}", 3, timedelta(minutes=5)),
                AUDIT,
            )
        )[0]
        for n in range(40)
    ]
    worker = Worker(services, concurrency=3)
    running = asyncio.create_task(worker.run())
    try:
        for task in submitted:
            for _ in range(1000):
                stored = await services.tasks.get("alice", task.id)
                assert stored is not None
                if stored.status == "completed":
                    assert stored.result == {"task": task.id}
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"task {task.id} did not complete")
    finally:
        worker.stop()
        await running
    assert GAUGE["most"] == 3


async def test_complete_and_claim_fences_each_completion_and_claims_within_limit(
    services: Services,
) -> None:
    job = await services.jobs.create("alice", {"title": "A"}, AUDIT)
    for n in range(6):
        await services.tasks.submit(job, submission(f"c{n}"), AUDIT)
    (first, a), (second, b), (third, c) = await services.tasks.claim("worker-a", 30, 3)
    await services.tasks.release(b)  # b is fenced out; its task is queued again
    committed, claimed = await services.tasks.complete_and_claim(
        [(a, {"n": 1}), (b, {"n": 2}), (c, {"n": 3})], "worker-a", 30, 2
    )
    assert committed == [True, False, True]
    assert len(claimed) == 2 and {t.id for t, _ in claimed}.isdisjoint({first.id, third.id})
    for task, lease in claimed:
        assert lease.token not in (a.token, b.token, c.token)
        stored = await services.tasks.get("alice", task.id)
        assert stored is not None and stored.status == "running"
        assert stored.lease_token == lease.token
    for task, result in ((first, {"n": 1}), (third, {"n": 3})):
        stored = await services.tasks.get("alice", task.id)
        assert stored is not None and stored.status == "completed" and stored.result == result
    again = await services.tasks.get("alice", second.id)
    assert again is not None and again.result is None and again.lease_token != b.token
    assert await services.tasks.complete_many([(b, {"n": 2})]) == [False]
    events = await services.jobs.events("alice", job.id)
    started = [e.payload["task_id"] for e in events if e.event_type == "task.started"]
    assert sorted(started) == sorted([first.id, second.id, third.id] + [t.id for t, _ in claimed])
    completed = [e.payload["task_id"] for e in events if e.event_type == "task.completed"]
    assert sorted(completed) == sorted([first.id, third.id])
