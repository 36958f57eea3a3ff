"""Retention on SQLite and PostgreSQL: each rule deletes what outlived its period, and never
an unfinished task, a latest artifact, a run that can resume or a prompt's latest result (I17).

Ages are made by moving stamps back in the database, never by waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from genkeep.cli.outputs import Output, OutputFormat, write_outputs
from genkeep.config import GeneratorProfile, Settings
from genkeep.db.artifacts import NewArtifact
from genkeep.db.jobs import Audit
from genkeep.db.llm_cache import DbLlmCache
from genkeep.db.models import (
    Artifact,
    ArtifactLatest,
    JobEvent,
    LlmAnswer,
    LlmFlight,
    Result,
    Run,
    RunBatch,
    RunChange,
    Task,
    TaskChange,
)
from genkeep.db.retention import RetentionStore
from genkeep.db.runs import RESUMABLE
from genkeep.db.tasks import Submission
from genkeep.db.types import utcnow
from genkeep.extract.model import ChunkParams
from genkeep.extract.runner import ExtractionRunner
from genkeep.extract.service import RunRequest
from genkeep.ops.retention import apply_retention
from genkeep.ops.sweep import sweep_if_due
from genkeep.services import Services
from genkeep.worker.runner import Worker
from tests.support.services import opened_services

AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
HOUR = 3600.0


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    profiles = {
        "default": GeneratorProfile(),
        "capped": GeneratorProfile(model="capped-1", keep_versions=2),
        "aged": GeneratorProfile(model="aged-1", keep_days=1),
    }
    async with opened_services(settings, tmp_path, profiles=profiles, task_lease_s=3) as opened:
        yield opened


def with_settings(services: Services, **values: Any) -> Services:
    """The same services under other retention settings (the rules read them per sweep)."""
    services.settings = services.settings.model_copy(update=values)
    return services


async def count(services: Services, table: Any, *where: Any) -> int:
    async with services.database.reading() as session:
        query = select(func.count()).select_from(table).where(*where)
        return int((await session.execute(query)).scalar_one())


async def age(
    services: Services, table: Any, column: Any, key: Any, ids: list[str], s: float
) -> None:
    """Move ``column`` of the rows ``key in ids`` back by ``s`` seconds."""
    async with services.database.transaction() as session:
        await session.execute(
            update(table).where(key.in_(ids)).values({column: utcnow() - timedelta(seconds=s)})
        )


async def submit(services: Services, job: Any, n: int, kind: str = "noop") -> list[str]:
    ids = []
    for index in range(n):
        submission = Submission(kind, {}, f"{job.id}-{index}", 3, timedelta(hours=1))
        task, _ = await services.tasks.submit(job, submission, AUDIT)
        ids.append(task.id)
    return ids


async def test_task_rules_delete_finished_tasks_by_period_and_never_an_unfinished_one(
    services: Services,
) -> None:
    job = await services.jobs.create("alice", {"title": "retention"}, AUDIT)
    everyone = await submit(services, job, 4)
    claimed = await services.tasks.claim("w", 30, 2)
    for _, lease in claimed:
        await services.tasks.complete(lease, {}, [])
    old_done, new_done = (lease.task_id for _, lease in claimed)
    [(_, lease)] = await services.tasks.claim("w", 30, 1)
    running = lease.task_id
    [queued] = set(everyone) - {old_done, new_done, running}
    # Every stamp two hours old, the finished one's too; and one finished just now.
    for column in ("created_at", "updated_at", "run_after", "started_at"):
        await age(services, Task, column, Task.id, everyone, 2 * HOUR)
    await age(services, Task, "finished_at", Task.id, [old_done], 2 * HOUR)
    await age(services, TaskChange, "changed_at", TaskChange.task_id, everyone, 2 * HOUR)
    events = await count(services, JobEvent, JobEvent.job_id == job.id)

    with_settings(services, retention_changes_s=HOUR, retention_tasks_s=24 * HOUR)
    deleted = await apply_retention(services, batch=1)  # batches of one: the loop runs to the end
    assert deleted["task_changes"] == 3  # the old finished task's: queued, running, completed
    assert await count(services, TaskChange, TaskChange.task_id == old_done) == 0
    for kept in (new_done, queued, running):
        assert await count(services, TaskChange, TaskChange.task_id == kept) > 0, kept
    assert await count(services, Task, Task.job_id == job.id) == 4

    with_settings(services, retention_tasks_s=HOUR)
    deleted = await apply_retention(services, batch=2)
    assert deleted["tasks"] == 1
    remaining = set((await tasks_of(services, job.id)).items())
    assert remaining == {(new_done, "completed"), (queued, "queued"), (running, "running")}

    # Period zero: every finished task goes, the unfinished ones stay however old.
    with_settings(services, retention_changes_s=0, retention_tasks_s=0)
    await apply_retention(services, batch=10)
    assert await tasks_of(services, job.id) == {queued: "queued", running: "running"}
    assert await count(services, TaskChange, TaskChange.task_id.in_([queued, running])) >= 2
    # The job's audit log stays as long as the job does.
    assert await count(services, JobEvent, JobEvent.job_id == job.id) == events


async def tasks_of(services: Services, job_id: str) -> dict[str, str]:
    async with services.database.reading() as session:
        rows = await session.execute(select(Task.id, Task.status).where(Task.job_id == job_id))
        return {row.id: row.status for row in rows}


async def test_task_events_go_only_when_asked_and_latest_artifacts_stay(
    services: Services,
) -> None:
    job = await services.jobs.create("alice", {"title": "artifacts"}, AUDIT)
    [first, second] = await submit(services, job, 2)
    for _ in range(2):
        [(_, lease)] = await services.tasks.claim("w", 30, 1)
        info = await services.blobs.put(
            f"owners/alice/jobs/{job.id}/tasks/{lease.task_id}/1/a", b"x", content_type="text/plain"
        )
        new = NewArtifact("txt", info.key, "a", "text/plain", info.size, info.sha256)
        await services.tasks.complete(lease, {}, [new])
    await age(services, Task, "finished_at", Task.id, [first, second], 2 * HOUR)
    with_settings(services, retention_tasks_s=0, retention_changes_s=0)
    assert "task_events" not in await apply_retention(services, batch=10)
    assert await count(services, Task, Task.job_id == job.id) == 0
    # The finished tasks are gone; their artifacts and the latest pointer are not.
    async with services.database.reading() as session:
        latest = (await session.execute(select(ArtifactLatest.version))).scalar_one()
    assert latest == 2 and await count(services, Artifact, Artifact.job_id == job.id) == 2
    assert (await services.artifacts.latest("alice", job.id, "txt")) is not None

    task_events = JobEvent.event_type.like("task.%")
    assert await count(services, JobEvent, task_events) > 0
    with_settings(services, retention_task_events_s=HOUR)
    assert (await apply_retention(services, batch=10))["task_events"] == 0  # too young
    await age(services, JobEvent, "created_at", JobEvent.job_id, [job.id], 2 * HOUR)
    await apply_retention(services, batch=1)
    assert await count(services, JobEvent, task_events) == 0
    assert await count(services, JobEvent, JobEvent.event_type == "job.created") == 1


async def test_a_completed_run_keeps_what_export_and_resume_read_and_a_stopped_run_its_batches(
    services: Services, tmp_path: Path
) -> None:
    text = (SAMPLES / "text.md").read_text()
    request = RunRequest(
        text, "t.md", (SAMPLES / "ontology.ttl").read_bytes(), "o.ttl", ChunkParams(400, 40, 2)
    )
    service = services.extraction
    done = await service.create("alice", request, "builtin")
    runner = ExtractionRunner(services.runs, services.blobs, lease_s=5, concurrency=2)
    inputs = await service.inputs(done)
    assert await runner.execute(done, inputs, asyncio.Event()) == "completed"
    before = tmp_path / "before.ttl"
    await write_outputs(
        services.blobs,
        await services.runs.require("alice", done.id),
        [Output(before, OutputFormat.turtle)],
    )
    # A cancelled run with a batch done: it can resume, so its batches stay.
    stopped = await service.create("alice", request, "builtin")
    async with services.database.transaction() as session:
        await session.execute(
            insert(RunBatch).values(
                run_id=stopped.id,
                batch_index=0,
                status="done",
                result="{}",
                checksum="x",
                attempts=1,
                updated_at=utcnow(),
            )
        )
        await session.execute(
            update(Run).where(Run.id == stopped.id).values(status="cancelled", finished_at=utcnow())
        )
    assert await count(services, RunBatch, RunBatch.run_id == done.id) > 0
    await age(services, Run, "finished_at", Run.id, [done.id, stopped.id], 2 * HOUR)
    await age(services, RunChange, "changed_at", RunChange.run_id, [done.id, stopped.id], 2 * HOUR)

    with_settings(services, retention_run_batches_s=HOUR, retention_changes_s=HOUR)
    deleted = await apply_retention(services, batch=3)
    assert deleted["run_batches"] > 0 and deleted["run_changes"] > 0
    assert await count(services, RunBatch, RunBatch.run_id == done.id) == 0
    assert await count(services, RunChange, RunChange.run_id.in_([done.id, stopped.id])) == 0
    assert await count(services, RunBatch, RunBatch.run_id == stopped.id) == 1
    kept = await services.runs.require("alice", stopped.id)
    assert kept.status in RESUMABLE
    # `runs export` (and a resume of a completed run, which hands over the same documents).
    completed = await services.runs.require("alice", done.id)
    after = tmp_path / "after.ttl"
    await write_outputs(services.blobs, completed, [Output(after, OutputFormat.turtle)])
    assert after.read_bytes() == before.read_bytes() and after.stat().st_size > 0
    assert await services.blobs.exists(completed.input_blob_key)


async def test_llm_cache_entries_expire_after_their_ttl(services: Services) -> None:
    cache = DbLlmCache(services.database, ttl_s=HOUR)
    await cache.put("a" * 64, "old")
    await cache.put("b" * 64, "new")
    await age(services, LlmAnswer, "created_at", LlmAnswer.request_hash, ["a" * 64], 2 * HOUR)
    assert await cache.get("a" * 64) is None  # expired: a miss even before the sweep
    assert await cache.get("b" * 64) == "new"
    with_settings(services, llm_cache_ttl_s=HOUR)
    assert (await apply_retention(services, batch=10))["llm_cache"] == 1
    assert await count(services, LlmAnswer) == 1


async def test_a_dead_leaders_llm_flight_is_swept_an_hour_after_its_lease(
    services: Services,
) -> None:
    cache = DbLlmCache(services.database, ttl_s=HOUR)
    dead, late, live = "d" * 64, "e" * 64, "f" * 64
    for key in (dead, late, live):
        assert await cache.claim(key, f"leader-{key[0]}", lease_s=60)
    # The leaders of two died: one's lease ended two hours ago, the other's ten minutes ago.
    await age(services, LlmFlight, "lease_expires_at", LlmFlight.request_hash, [dead], 2 * HOUR)
    await age(services, LlmFlight, "lease_expires_at", LlmFlight.request_hash, [late], 600)
    assert (await apply_retention(services, batch=10))["llm_flights"] == 1
    async with services.database.reading() as session:
        left = set((await session.execute(select(LlmFlight.request_hash))).scalars())
    assert left == {late, live}
    # Nothing of the dead flight is left to take over: the next caller leads afresh.
    assert await cache.claim(dead, "next", lease_s=60)
    assert not await cache.claim(live, "intruder", lease_s=60)


async def test_results_stay_by_default_and_a_profile_caps_versions_or_age(
    services: Services,
) -> None:
    prompts = {}
    for profile in ("default", "capped", "aged"):
        first = await services.generate.generate("alice", f"note for {profile}", profile)
        for _ in range(3):
            await services.generate.regenerate("alice", str(first.prompt_id))
        prompts[profile] = str(first.prompt_id)
    await age(services, Result, "created_at", Result.owner_id, ["alice"], 3 * 86400)
    deleted = await apply_retention(services, batch=1)
    assert deleted == deleted | {"results:capped": 2, "results:aged": 3}
    assert "results:default" not in deleted

    async def versions(prompt_id: str) -> list[int]:
        return [r.version for r in await services.prompts.list_results("alice", prompt_id)]

    assert sorted(await versions(prompts["default"])) == [1, 2, 3, 4]
    assert sorted(await versions(prompts["capped"])) == [3, 4]
    assert sorted(await versions(prompts["aged"])) == [4]  # all too old; the latest stays
    for prompt_id in prompts.values():
        latest = await services.prompts.latest_result("alice", prompt_id)
        assert latest is not None and latest.version == 4


async def test_one_process_sweeps_per_period_and_a_worker_sweeps_by_itself(
    services: Services,
) -> None:
    store = RetentionStore(services.database)
    assert await store.claim_sweep("probe", "a", HOUR)
    assert not await store.claim_sweep("probe", "b", HOUR)  # a swept within the hour
    assert await store.claim_sweep("probe", "b", 0)
    await store.renew_sweep("probe", "b")  # b sweeps on: nobody joins it within the period
    assert not await store.claim_sweep("probe", "c", 60)

    with_settings(services, retention_changes_s=0, retention_tasks_s=0, sweep_interval_s=0.2)
    job = await services.jobs.create("alice", {"title": "worker sweep"}, AUDIT)
    await submit(services, job, 5)
    worker = Worker(services, concurrency=2, housekeeping=lambda: sweep_if_due(services))
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while await count(services, Task, Task.job_id == job.id):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await running
    assert await count(services, TaskChange) == 0
    assert await count(services, JobEvent, JobEvent.job_id == job.id) > 0
