"""Real worker processes: many tasks, crashes (SIGKILL), shutdown (SIGTERM), pauses (SIGSTOP)."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from genkeep.db.database import Database
from genkeep.db.models import Artifact, ArtifactLatest, JobEvent, Task
from tests.support.server import Server, WorkerProcess, pid_of

pytestmark = pytest.mark.e2e

FAST_LEASE = {"GENKEEP_TASK_LEASE_S": "1", "GENKEEP_TASK_POLL_S": "0.2"}


async def wait_for(
    db_url: str, query: Any, predicate: Callable[[Any], bool], seconds: float = 60
) -> Any:
    database = Database(db_url)
    try:
        deadline = time.monotonic() + seconds
        while True:
            async with database.reading() as session:
                value = (await session.execute(query)).all()
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last value {value!r}")
            await asyncio.sleep(0.1)
    finally:
        await database.dispose()


async def rows(db_url: str, query: Any) -> list[Any]:
    database = Database(db_url)
    try:
        async with database.reading() as session:
            return list((await session.execute(query)).all())
    finally:
        await database.dispose()


async def test_three_workers_run_each_of_300_tasks_once(
    servers: Callable[..., Server],
    workers: Callable[..., WorkerProcess],
    db_url: str,
) -> None:
    # The server runs no worker: the three `genkeep worker` processes do all the work.
    server = servers(GENKEEP_SERVE_WORKER="false")
    started = [workers(concurrency=4) for _ in range(3)]
    async with httpx.AsyncClient(
        base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=40)
    ) as client:
        result = (await client.post("/v1/generate", json={"prompt": "Export me"})).json()
        jobs = [
            (await client.post("/v1/jobs", json={"title": f"job {i}"})).json()["id"]
            for i in range(10)
        ]
        body = {"kind": "export", "payload": {"formats": ["md"], "result_id": result["result_id"]}}
        plan = [(jobs[i % 10], f"key-{i}") for i in range(300)]
        submissions = plan * 2 + random.Random(7).sample(plan, 60)
        random.Random(8).shuffle(submissions)
        semaphore = asyncio.Semaphore(30)

        async def submit(job_id: str, key: str) -> httpx.Response:
            async with semaphore:
                return await client.post(
                    f"/v1/jobs/{job_id}/tasks", json=body, headers={"Idempotency-Key": key}
                )

        responses = await asyncio.gather(*[submit(j, k) for j, k in submissions])
    assert {r.status_code for r in responses} <= {200, 201}
    assert sum(r.status_code == 201 for r in responses) == 300
    assert len({r.json()["id"] for r in responses}) == 300
    await wait_for(
        db_url,
        select(Task.status, func.count()).group_by(Task.status),
        lambda v: v == [("completed", 300)],
        seconds=240,
    )
    completed = Counter(
        event.payload["task_id"]
        for (event,) in await rows(
            db_url, select(JobEvent).where(JobEvent.event_type == "task.completed")
        )
    )
    assert len(completed) == 300 and set(completed.values()) == {1}
    ran_on = {pid_of(str(w)) for (w,) in await rows(db_url, select(Task.worker_id))}
    assert ran_on == {w.pid for w in started}  # every worker took part, and only they
    versions: dict[str, list[int]] = {}
    for job_id, version in await rows(db_url, select(Artifact.job_id, Artifact.version)):
        versions.setdefault(job_id, []).append(version)
    assert {j: sorted(v) for j, v in versions.items()} == {j: list(range(1, 31)) for j in jobs}
    latest = await rows(
        db_url, select(ArtifactLatest.job_id, ArtifactLatest.version, ArtifactLatest.artifact_id)
    )
    artifact_versions = dict(await rows(db_url, select(Artifact.id, Artifact.version)))
    assert sorted(job for job, _, _ in latest) == sorted(jobs)
    assert all(version == 30 and artifact_versions[a] == 30 for _, version, a in latest)


async def submit_sleep(server: Server, steps: int) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        job = (await client.post("/v1/jobs", json={"title": "sleepy"})).json()["id"]
        task = await client.post(
            f"/v1/jobs/{job}/tasks",
            json={"kind": "sleep", "payload": {"steps": steps, "step_s": 0.1}},
            headers={"Idempotency-Key": "sleepy"},
        )
        return job, task.json()["id"]


async def running_on(db_url: str, task_id: str) -> str:
    [(worker_id,)] = await wait_for(
        db_url,
        select(Task.worker_id).where(Task.id == task_id, Task.status == "running"),
        lambda v: len(v) == 1,
        seconds=30,
    )
    return str(worker_id)


async def test_killed_worker_task_completes_after_lease(
    servers: Callable[..., Server], workers: Callable[..., WorkerProcess], db_url: str
) -> None:
    server = servers(GENKEEP_SERVE_WORKER="false")
    doomed = workers(**FAST_LEASE)
    job, task_id = await submit_sleep(server, steps=30)
    assert pid_of(await running_on(db_url, task_id)) == doomed.pid
    await asyncio.sleep(0.5)
    doomed.signal(signal.SIGKILL)
    survivor = workers(**FAST_LEASE)
    await wait_for(
        db_url,
        select(Task.status).where(Task.id == task_id),
        lambda v: v == [("completed",)],
        seconds=60,
    )
    [(attempts, worker_id)] = await rows(
        db_url, select(Task.attempts, Task.worker_id).where(Task.id == task_id)
    )
    assert attempts == 2 and pid_of(str(worker_id)) == survivor.pid
    assert await rows(db_url, select(Artifact.version).where(Artifact.job_id == job)) == [(1,)]


async def test_sigterm_leaves_nothing_running(
    servers: Callable[..., Server],
    workers: Callable[..., WorkerProcess],
    db_url: str,
    tmp_path: Path,
) -> None:
    server = servers(GENKEEP_SERVE_WORKER="false")
    worker = workers(GENKEEP_WORKER_SHUTDOWN_GRACE_S="0.5", **FAST_LEASE)
    _, task_id = await submit_sleep(server, steps=200)
    await running_on(db_url, task_id)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    [(status, attempts)] = await rows(
        db_url, select(Task.status, Task.attempts).where(Task.id == task_id)
    )
    assert status == "queued" and attempts == 0  # released, not stuck in running
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        assert (await client.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200
    finisher = workers(GENKEEP_WORKER_SHUTDOWN_GRACE_S="60", **FAST_LEASE)
    gate = tmp_path / "gate"
    _, gated = await submit_gated(server, gate)
    await running_on(db_url, gated)
    finisher.signal(signal.SIGTERM)  # the task is held at its gate: it cannot have finished yet
    # Well into the grace period the worker still waits for its task instead of releasing it.
    with pytest.raises(subprocess.TimeoutExpired):
        await asyncio.to_thread(finisher.wait, 2)
    [(still,)] = await rows(db_url, select(Task.status).where(Task.id == gated))
    assert still == "running"
    gate.touch()  # within the grace period the task finishes
    assert finisher.wait(timeout=60) == 0
    [(gated_status,)] = await rows(db_url, select(Task.status).where(Task.id == gated))
    assert gated_status == "completed"


async def submit_gated(server: Server, gate: Path) -> tuple[str, str]:
    """A task that runs until the test creates ``gate`` (tests/support/handlers.py)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        job = (await client.post("/v1/jobs", json={"title": "gated"})).json()["id"]
        task = await client.post(
            f"/v1/jobs/{job}/tasks",
            json={"kind": "stages", "payload": {"steps": 3, "gate_at": 2, "gate": str(gate)}},
            headers={"Idempotency-Key": "gated"},
        )
        return job, task.json()["id"]


def pause_between_writes(worker: WorkerProcess, db_url: str) -> None:
    """SIGSTOP the worker; on SQLite, at a moment it holds no write lock.

    A SQLite writer stopped inside its transaction keeps the one write lock, and no other
    process can write until it resumes: SQLite's nature, not the scenario under test (a
    worker paused between its writes, whose lease another worker takes over).
    """
    path = make_url(db_url).database if db_url.startswith("sqlite") else None
    for _ in range(200):
        worker.signal(signal.SIGSTOP)
        if path is None or _write_lock_free(path):
            return
        worker.signal(signal.SIGCONT)
        time.sleep(random.uniform(0.001, 0.02))
    raise AssertionError("the worker held the SQLite write lock at every pause")


def _write_lock_free(path: str) -> bool:
    connection = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


async def test_paused_worker_cannot_commit_after_takeover(
    servers: Callable[..., Server], workers: Callable[..., WorkerProcess], db_url: str
) -> None:
    server = servers(GENKEEP_SERVE_WORKER="false")
    paused = workers(**FAST_LEASE)
    job, task_id = await submit_sleep(server, steps=20)
    assert pid_of(await running_on(db_url, task_id)) == paused.pid
    pause_between_writes(paused, db_url)
    other = workers(**FAST_LEASE)
    await wait_for(
        db_url,
        select(Task.status).where(Task.id == task_id),
        lambda v: v == [("completed",)],
        seconds=60,
    )
    paused.signal(signal.SIGCONT)
    # The paused worker wakes, finishes its steps, tries to commit and is fenced out.
    deadline = time.monotonic() + 60
    while "taken over" not in paused.log() and "fenced" not in paused.log():
        assert time.monotonic() < deadline, "the paused worker never tried to commit"
        await asyncio.sleep(0.1)
    [(attempts, worker_id, result)] = await rows(
        db_url, select(Task.attempts, Task.worker_id, Task.status).where(Task.id == task_id)
    )
    assert result == "completed" and pid_of(str(worker_id)) == other.pid and attempts == 2
    assert await rows(db_url, select(Artifact.version).where(Artifact.job_id == job)) == [(1,)]
    events = await rows(db_url, select(JobEvent.event_type).where(JobEvent.job_id == job))
    assert [e for (e,) in events].count("task.completed") == 1
    assert "taken over" in paused.log() or "fenced" in paused.log()
