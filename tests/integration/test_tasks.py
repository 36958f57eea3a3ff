"""Tasks, workers and artifacts on SQLite and PostgreSQL (I4, I5, fencing)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from genkeep.config import Settings
from genkeep.db.artifacts import NewArtifact
from genkeep.db.jobs import Audit
from genkeep.db.models import Job, Task
from genkeep.db.tasks import Submission
from genkeep.db.types import utcnow
from genkeep.errors import Conflict, IdempotencyMismatch, LeaseLost
from genkeep.ops.sweep import sweep
from genkeep.services import Services
from genkeep.worker.completer import Completer
from genkeep.worker.runner import Worker
from tests.support.services import opened_services

AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")
OWNER = "alice"


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    async with opened_services(
        settings,
        tmp_path,
        task_lease_s=0.6,
        task_poll_s=0.05,
        task_backoff_base_s=0.05,
        task_max_attempts=3,
    ) as opened:
        yield opened


async def new_job(services: Services, **fields: object) -> Job:
    return await services.jobs.create(OWNER, {"title": "Report", **fields}, AUDIT)


def submission(kind: str, key: str, **payload: object) -> Submission:
    return Submission(kind, dict(payload), key, max_attempts=3, timeout=timedelta(minutes=5))


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def finished(services: Services, task_id: str) -> Task:
    async def done() -> bool:
        task = await services.tasks.get(OWNER, task_id)
        return task is not None and task.status in ("completed", "failed", "cancelled")

    await until(done)
    task = await services.tasks.get(OWNER, task_id)
    assert task is not None
    return task


async def test_idempotent_submission(services: Services) -> None:
    job = await new_job(services)
    first, created = await services.tasks.submit(job, submission("noop", "k1", a=1), AUDIT)
    again, created_again = await services.tasks.submit(job, submission("noop", "k1", a=1), AUDIT)
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyMismatch):
        await services.tasks.submit(job, submission("noop", "k1", a=2), AUDIT)
    racing = await asyncio.gather(
        *[services.tasks.submit(job, submission("noop", "k2"), AUDIT) for _ in range(20)]
    )
    assert len({task.id for task, _ in racing}) == 1
    assert sum(created for _, created in racing) == 1
    other_owner_job = await services.jobs.create("bob", {"title": "b"}, AUDIT)
    bobs, bob_created = await services.tasks.submit(
        other_owner_job, submission("noop", "k1"), AUDIT
    )
    assert bob_created and bobs.id != first.id  # keys are scoped to the owner


async def test_worker_runs_export_into_versioned_artifacts(services: Services) -> None:
    prompt = await services.generate.generate(OWNER, "Quarterly summary")
    job = await new_job(services)
    worker = Worker(services, concurrency=2)
    running = asyncio.create_task(worker.run())
    try:
        ids = []
        for key in ("e1", "e2", "e3"):
            task, _ = await services.tasks.submit(
                job, submission("export", key, formats=["md"], result_id=prompt.result_id), AUDIT
            )
            ids.append(task.id)
        tasks = [await finished(services, task_id) for task_id in ids]
        zipped, _ = await services.tasks.submit(
            job,
            submission("export", "e4", formats=["pdf", "docx"], prompt_id=prompt.prompt_id),
            AUDIT,
        )
        bundle_task = await finished(services, zipped.id)
    finally:
        worker.stop()
        await running
    assert [t.status for t in tasks] == ["completed"] * 3 and bundle_task.status == "completed"
    artifacts = await services.artifacts.list_visible(OWNER, job.id, "md")
    assert sorted(a.version for a in artifacts) == [1, 2, 3]
    latest = await services.artifacts.latest(OWNER, job.id, "md")
    assert latest is not None and latest.version == 3
    data = await services.blobs.get(latest.blob_key)
    assert data.decode() == prompt.content  # canonical content, byte for byte (I2)
    assert latest.sha256 == hashlib.sha256(data).hexdigest()
    assert latest.source_result_id == prompt.result_id
    assert latest.source_sha256 == prompt.content_sha256
    [bundle] = await services.artifacts.list_visible(OWNER, job.id, "zip")
    assert bundle.is_zip and bundle.version == 1
    events = [e.event_type for e in await services.jobs.events(OWNER, job.id)]
    assert events.count("task.completed") == 4 and events[0] == "job.created"


async def test_every_task_event_names_its_kind_and_a_failure_its_error(
    services: Services,
) -> None:
    """The audit log tells which kind of task each event is about, from every path that
    writes one (the drivers' claim and completion, the worker's, the API's)."""
    prompt = await services.generate.generate(OWNER, "Kinds in the audit log")
    job = await new_job(services)
    worker = Worker(services)
    running = asyncio.create_task(worker.run())
    try:
        plain, _ = await services.tasks.submit(job, submission("noop", "kind-noop"), AUDIT)
        made = submission("export", "kind-export", formats=["md"], result_id=prompt.result_id)
        exported, _ = await services.tasks.submit(job, made, AUDIT)
        bad = Submission(
            "export",
            {"formats": ["md"], "prompt_id": "0" * 32},
            "kind-bad",
            max_attempts=1,
            timeout=timedelta(minutes=5),
        )
        broken, _ = await services.tasks.submit(job, bad, AUDIT)
        for task in (plain, exported, broken):
            await finished(services, task.id)
    finally:
        worker.stop()
        await running
    await services.tasks.retry(OWNER, broken.id, 1, AUDIT)
    await services.tasks.request_cancel(OWNER, broken.id, AUDIT)
    events = [e for e in await services.jobs.events(OWNER, job.id) if e.event_type[:5] == "task."]
    kinds = {plain.id: "noop", exported.id: "export", broken.id: "export"}
    named = [(e.event_type, e.payload.get("kind")) for e in events]
    assert named == [(e.event_type, kinds[e.payload["task_id"]]) for e in events]
    assert {e.event_type for e in events} == {
        "task.queued",
        "task.started",
        "task.completed",
        "task.failed",
        "task.retried",
        "task.cancelled",
    }
    [failed] = [e for e in events if e.event_type == "task.failed"]
    assert failed.payload["task_id"] == broken.id
    assert "not found" in failed.payload["error"]


async def test_retries_with_backoff_then_fails_and_can_be_retried(services: Services) -> None:
    job = await new_job(services)
    worker = Worker(services)
    running = asyncio.create_task(worker.run())
    try:
        ok, _ = await services.tasks.submit(job, submission("flaky", "f1", succeed_on=2), AUDIT)
        never, _ = await services.tasks.submit(job, submission("flaky", "f2"), AUDIT)
        succeeded = await finished(services, ok.id)
        failed = await finished(services, never.id)
        assert succeeded.status == "completed" and succeeded.attempts == 2
        assert failed.status == "failed" and failed.attempts == 3
        assert "flaky failure on attempt 3" in (failed.error or "")
        retried = await services.tasks.retry(OWNER, never.id, 1, AUDIT)
        assert retried.status == "queued" and retried.max_attempts == 4
        again = await finished(services, never.id)
        assert again.status == "failed" and again.attempts == 4
    finally:
        worker.stop()
        await running
    with pytest.raises(Conflict):
        await services.tasks.retry(OWNER, ok.id, 1, AUDIT)


async def test_cancel_queued_and_running(services: Services) -> None:
    job = await new_job(services)
    queued, _ = await services.tasks.submit(job, submission("sleep", "c1"), AUDIT)
    cancelled = await services.tasks.request_cancel(OWNER, queued.id, AUDIT)
    assert cancelled.status == "cancelled"
    worker = Worker(services)
    running_loop = asyncio.create_task(worker.run())
    try:
        slow, _ = await services.tasks.submit(job, submission("sleep", "c2", steps=200), AUDIT)

        async def started() -> bool:
            task = await services.tasks.get(OWNER, slow.id)
            return task is not None and task.status == "running"

        await until(started)
        await services.tasks.request_cancel(OWNER, slow.id, AUDIT)
        stopped = await finished(services, slow.id)
    finally:
        worker.stop()
        await running_loop
    assert stopped.status == "cancelled"
    assert await services.artifacts.list_visible(OWNER, job.id) == []
    with pytest.raises(Conflict):
        await services.tasks.request_cancel(OWNER, slow.id, AUDIT)


async def test_fenced_out_worker_cannot_commit(services: Services) -> None:
    job = await new_job(services)
    task, _ = await services.tasks.submit(job, submission("noop", "x1"), AUDIT)
    [(_, stale)] = await services.tasks.claim("worker-a", 0.2, 1)
    await asyncio.sleep(0.3)
    assert await services.tasks.claim("worker-b", 30, 1) == []  # running, lease expired
    assert await services.tasks.reap_expired() == 1  # queued again, stale token cleared
    [(_, fresh)] = await services.tasks.claim("worker-b", 30, 1)
    out = NewArtifact("txt", "owners/alice/x", "x.txt", "text/plain", 1, "0" * 64)
    for write in (
        services.tasks.heartbeat(stale, 30),
        services.tasks.set_stage(stale, "late", 0.5),
        services.tasks.complete(stale, {"by": "a"}, [out]),
        services.tasks.fail(stale, "late failure", None),
        services.tasks.release(stale),
    ):
        with pytest.raises(LeaseLost):
            await write
    await services.tasks.complete(fresh, {"by": "b"}, [out])
    with pytest.raises(LeaseLost):  # a finished task is never overwritten
        await services.tasks.complete(fresh, {"by": "b-again"}, [out])
    done = await services.tasks.get(OWNER, task.id)
    assert done is not None and done.status == "completed" and done.result == {"by": "b"}
    assert done.attempts == 2
    assert [a.version for a in await services.artifacts.list_visible(OWNER, job.id)] == [1]


async def test_batch_completion_fences_each_task_on_its_own(services: Services) -> None:
    job = await new_job(services)
    for key in ("b1", "b2", "b3"):
        await services.tasks.submit(job, submission("noop", key), AUDIT)
    claimed = await services.tasks.claim("worker-a", 30, 3)
    (first, a), (second, b), (third, c) = claimed
    await services.tasks.mark_cancelled(b)  # b's lease is spent: its completion is refused
    committed = await services.tasks.complete_many([(a, {"n": 1}), (b, {"n": 2}), (c, {"n": 3})])
    assert committed == [True, False, True]
    states = {t.id: await services.tasks.get(OWNER, t.id) for t in (first, second, third)}
    assert [(s.status, s.result) for s in states.values() if s is not None] == [
        ("completed", {"n": 1}),
        ("cancelled", None),
        ("completed", {"n": 3}),
    ]
    events = await services.jobs.events(OWNER, job.id)
    completed = [e.payload["task_id"] for e in events if e.event_type == "task.completed"]
    assert sorted(completed) == sorted([first.id, third.id])


async def test_completer_groups_concurrent_completions(services: Services) -> None:
    job = await new_job(services)
    for number in range(30):
        await services.tasks.submit(job, submission("noop", f"c{number}"), AUDIT)
    claimed = await services.tasks.claim("worker-a", 30, 30)
    stale_task, stale = claimed[0]
    await services.tasks.release(stale)
    completer = Completer(services.tasks)
    outcomes = await asyncio.gather(
        *(completer.complete(lease, {"task": task.id}) for task, lease in claimed),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], LeaseLost)
    assert outcomes[1:] == [None] * 29
    for task, _ in claimed[1:]:
        done = await services.tasks.get(OWNER, task.id)
        assert done is not None and done.status == "completed" and done.result == {"task": task.id}
    requeued = await services.tasks.get(OWNER, stale_task.id)
    assert requeued is not None and requeued.status == "queued"


async def test_version_allocation_is_contiguous_under_concurrency(
    services: Services, backend: str
) -> None:
    job = await new_job(services)
    allocators, each = (64, 50) if backend == "postgresql" else (8, 25)

    async def allocate() -> list[int]:
        versions = []
        for _ in range(each):
            async with services.database.transaction() as session:
                versions.append(await services.artifacts.allocate_version(session, job.id, "pdf"))
        return versions

    results = await asyncio.gather(*[allocate() for _ in range(allocators)])
    allocated = sorted(v for versions in results for v in versions)
    assert allocated == list(range(1, allocators * each + 1))


async def test_retention_lists_latest_and_five_previous(services: Services) -> None:
    job = await new_job(services)
    for i in range(8):
        async with services.database.transaction() as session:
            await services.artifacts.add(
                session, job, None, NewArtifact("md", f"k{i}", "f.md", "text/markdown", 1, "0" * 64)
            )
    visible = await services.artifacts.list_visible(OWNER, job.id, "md")
    assert [a.version for a in visible] == [8, 7, 6, 5, 4, 3]


async def test_sweep_deletes_expired_non_latest_and_orphans(services: Services) -> None:
    job = await new_job(services)
    keys = []
    for i in range(3):
        key = f"owners/alice/jobs/{job.id}/tasks/t{i}/a1/out.md"
        info = await services.blobs.put(key, f"v{i}".encode(), content_type="text/markdown")
        keys.append(key)
        async with services.database.transaction() as session:
            artifact = await services.artifacts.add(
                session,
                job,
                None,
                NewArtifact("md", key, "out.md", "text/markdown", info.size, info.sha256),
            )
            artifact.expires_at = utcnow() - timedelta(days=1)
    orphan = f"owners/alice/jobs/{job.id}/tasks/gone/a1/out.md"
    await services.blobs.put(orphan, b"orphan", content_type="text/plain")
    live_task, _ = await services.tasks.submit(job, submission("noop", "live"), AUDIT)
    in_flight = f"owners/alice/jobs/{job.id}/tasks/{live_task.id}/a1/out.md"
    await services.blobs.put(in_flight, b"being written", content_type="text/plain")
    report = await sweep(services)
    assert (report.artifacts_deleted, report.blobs_deleted, report.orphans_deleted) == (2, 2, 1)
    assert [a.version for a in await services.artifacts.list_visible(OWNER, job.id)] == [3]
    expired = [e for e in await services.jobs.events(OWNER, job.id) if e.actor == "sweep"]
    assert sorted((e.event_type, e.payload["version"]) for e in expired) == [
        ("artifact.expired", 1),
        ("artifact.expired", 2),
    ]
    assert not await services.blobs.exists(keys[0]) and not await services.blobs.exists(orphan)
    assert await services.blobs.exists(keys[2]) and await services.blobs.exists(in_flight)


async def test_worker_shutdown_releases_running_tasks(services: Services) -> None:
    # Short steps make the shutdown cancel land mid-write in some rounds: a write cut
    # off there must not keep SQLite's write lock from the release that follows.
    job = await new_job(services)
    for round_ in range(12):
        # A long lease: a heartbeat starved by a loaded machine must not let a reaper take
        # the task (the attempt counted) before the shutdown gives it back.
        configured = services.settings.model_copy(
            update={"worker_shutdown_grace_s": 0.01 + 0.003 * (round_ % 5), "task_lease_s": 30}
        )
        services.settings = configured
        worker = Worker(services)
        running = asyncio.create_task(worker.run())
        task, _ = await services.tasks.submit(
            job, submission("sleep", f"s{round_}", steps=5000, step_s=0.0005), AUDIT
        )

        async def started(task_id: str = task.id) -> bool:
            found = await services.tasks.get(OWNER, task_id)
            return found is not None and found.status == "running"

        await until(started)
        worker.stop()
        await running
        released = await services.tasks.get(OWNER, task.id)
        assert released is not None and released.status == "queued" and released.attempts == 0
        await services.tasks.request_cancel(
            OWNER, task.id, AUDIT
        )  # keep the next round's worker free


async def test_timeout_and_generate_task(services: Services) -> None:
    job = await new_job(services)
    # 10 s of work against a 3 s timeout, counted from submission: long enough for a loaded
    # machine's worker to claim it first (else it fails "timed out before it could run").
    slow = Submission("sleep", {"steps": 100}, "t1", max_attempts=3, timeout=timedelta(seconds=3))
    timed, _ = await services.tasks.submit(job, slow, AUDIT)
    generated, _ = await services.tasks.submit(
        job, submission("generate", "g1", prompt="Write a haiku"), AUDIT
    )
    worker = Worker(services)
    running = asyncio.create_task(worker.run())
    try:
        timed_out = await finished(services, timed.id)
        made = await finished(services, generated.id)
    finally:
        worker.stop()
        await running
    assert timed_out.status == "failed" and timed_out.error == "timed out"
    assert made.status == "completed" and made.result is not None
    stored = await services.prompts.get_result(OWNER, str(made.result["result_id"]))
    assert stored is not None and stored.version == 1


async def test_reaper_fails_a_task_whose_last_attempt_died(services: Services) -> None:
    job = await new_job(services)
    task, _ = await services.tasks.submit(
        job, Submission("noop", {}, "r1", max_attempts=1, timeout=timedelta(minutes=1)), AUDIT
    )
    [(_, lease)] = await services.tasks.claim("doomed", 0.1, 1)
    await asyncio.sleep(0.2)
    assert await services.tasks.reap_expired() == 1
    failed = await services.tasks.get(OWNER, task.id)
    assert (
        failed is not None
        and failed.status == "failed"
        and "stopped responding" in (failed.error or "")
    )
    with pytest.raises(LeaseLost):
        await services.tasks.complete(lease, {}, [])
    events = await services.jobs.events(OWNER, job.id)
    assert events[-1].event_type == "task.failed"
    assert events[-1].payload["kind"] == "noop"
    assert "stopped responding" in events[-1].payload["error"]
