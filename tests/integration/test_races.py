"""Races in the lease protocols, forced at named points (genkeep.core.interleave), on SQLite and
PostgreSQL. Each test drives one interleaving that broke an invariant before its fix."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from genkeep.config import Settings
from genkeep.core import identity, interleave
from genkeep.db.artifacts import NewArtifact
from genkeep.db.database import Database
from genkeep.db.jobs import Audit
from genkeep.db.models import Artifact, Result, Run, RunBatch, Task
from genkeep.db.prompts import PromptStore
from genkeep.extract.model import ChunkParams
from genkeep.extract.runner import ExtractionRunner, RunInputs
from genkeep.extract.service import RunRequest
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.outcome import Outcome
from genkeep.generate.service import GenerateService
from genkeep.ops.sweep import sweep
from genkeep.services import Services
from genkeep.worker.context import TaskContext
from genkeep.worker.runner import Worker
from tests.integration.test_runs import ONTOLOGY, TEXT, service_for
from tests.integration.test_tasks import finished, submission, until
from tests.support.generators import CountingGenerator
from tests.support.services import opened_services

OWNER = "alice"
AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")
ONE_AT_A_TIME = ChunkParams(size=300, overlap=30, batch_size=1)


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    async with opened_services(settings, tmp_path, claim_poll_s=0.005) as opened:
        yield opened


def generate_service(services: Services, generator: CountingGenerator) -> GenerateService:
    """A generate service of its own: in-process flights apart, it stands for a process."""
    return GenerateService(
        PromptStore(services.database), services.settings, {"builtin": generator}
    )


async def count(database: Database, model: type[Result] | type[Artifact] | type[RunBatch]) -> int:
    async with database.reading() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


class Counter:
    """Counts how often a point is reached, and lets a test wait for the n-th time."""

    def __init__(self) -> None:
        self.n = 0
        self.changed = asyncio.Condition()

    async def __call__(self) -> None:
        async with self.changed:
            self.n += 1
            self.changed.notify_all()

    async def reach(self, n: int) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.n >= n), 20)


async def new_run(services: Services) -> tuple[Run, RunInputs]:
    """A new run of one chunk a batch, as its executor reads it (pending), with its inputs."""
    extraction = service_for(services)
    request = RunRequest(TEXT, "t.md", ONTOLOGY, "o.ttl", ONE_AT_A_TIME)
    created = await extraction.create(OWNER, request, "builtin")
    run = await services.runs.require(OWNER, created.id)
    return run, await extraction.inputs(run)


# -- 1. the sweep and a task committing its artifact -----------------------------------------


async def test_sweep_never_deletes_a_blob_committed_between_its_reads(
    services: Services,
) -> None:
    job = await services.jobs.create(OWNER, {"title": "sweep race"}, AUDIT)
    await services.tasks.submit(job, submission("noop", "race"), AUDIT)
    [(claimed, lease)] = await services.tasks.claim("worker-1", 30, 1)
    context = TaskContext(task=claimed, lease=lease, tasks=services.tasks, services=services)
    data = b"a rendered file\n"
    info = await services.blobs.put(context.blob_key("out.txt"), data, content_type="text/plain")

    async def commit_meanwhile() -> None:
        # The task commits its artifact and `completed` after the sweep read the artifact
        # rows and before it reads the task's state.
        new = NewArtifact("txt", info.key, "out.txt", "text/plain", info.size, info.sha256)
        await services.tasks.complete(lease, {}, [new])

    with interleave.hooked("sweep.between_reads", commit_meanwhile):
        report = await sweep(services)
    assert report.orphans_deleted == 0
    assert await services.blobs.get(info.key) == data
    async with services.database.reading() as session:
        keys = (await session.execute(select(Artifact.blob_key))).scalars().all()
    assert keys == [info.key]
    assert hashlib.sha256(data).hexdigest() == info.sha256


async def test_a_released_attempt_and_the_next_write_under_different_keys(
    services: Services,
) -> None:
    job = await services.jobs.create(OWNER, {"title": "keys"}, AUDIT)
    await services.tasks.submit(job, submission("noop", "keys"), AUDIT)
    [(first, lease)] = await services.tasks.claim("worker-1", 30, 1)
    released_key = TaskContext(first, lease, services.tasks, services).blob_key("out.txt")
    await services.tasks.release(lease)  # the attempt is not counted: its number comes again
    [(second, again)] = await services.tasks.claim("worker-2", 30, 1)
    assert second.attempts == first.attempts
    next_key = TaskContext(second, again, services.tasks, services).blob_key("out.txt")
    assert next_key != released_key


# -- 3. max-age=0 from several processes -----------------------------------------------------


async def test_max_age_zero_from_three_processes_makes_one_call(services: Services) -> None:
    generator = CountingGenerator()
    first = await generate_service(services, generator).generate(OWNER, "fresh, please")
    async with services.database.transaction() as session:  # stored an hour ago
        await session.execute(
            update(Result).values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
    gate = asyncio.Event()
    generator.gate = gate
    waits = Counter()
    processes = [generate_service(services, generator) for _ in range(3)]
    with interleave.hooked("generate.before_claim", waits):
        asked = [
            asyncio.create_task(p.generate(OWNER, "fresh, please", None, CacheControl(max_age=0)))
            for p in processes
        ]
        # One claims and calls the model; the two others have each looked more than once.
        await waits.reach(6)
        gate.set()
        answers = await asyncio.gather(*asked)
    assert generator.calls == 2  # counted at the generator: v1, then one call for all three
    assert {a.version for a in answers} == {2} and first.version == 1
    assert len({a.result_id for a in answers}) == 1 and all(a.persisted for a in answers)
    assert await count(services.database, Result) == 2


# -- 4. a regenerate racing an edit ----------------------------------------------------------


async def test_no_cache_racing_an_edit_still_generates(services: Services) -> None:
    generator = CountingGenerator()
    service = generate_service(services, generator)
    first = await service.generate(OWNER, "edit me")
    assert first.result_id is not None and first.prompt_id is not None
    edited: list[int] = []

    async def edit_first() -> None:
        # The edit commits version 2 after the regeneration read version 1, before its claim.
        if not edited:
            made = await services.prompts.add_edit(OWNER, first.result_id or "", "# by hand\n")
            assert made is not None
            edited.append(made.version)

    with interleave.hooked("generate.before_claim", edit_first):
        fresh = await service.regenerate(OWNER, first.prompt_id)
    assert edited == [2]
    assert fresh.source == "regenerated" and fresh.version == 3
    assert not fresh.coalesced and generator.calls == 2


# -- suspected: a result stamped before its commit -------------------------------------------


async def test_no_cache_arriving_between_stamp_and_commit_joins_that_generation(
    services: Services,
) -> None:
    generator = CountingGenerator()
    leader, other = generate_service(services, generator), generate_service(services, generator)
    await leader.generate(OWNER, "stamped")
    looked = Counter()
    joined: list[asyncio.Task[Outcome]] = []

    async def arrive_before_commit() -> None:
        # The leader has stamped its result and not committed: a no-cache request arrives
        # and reads the prompt (still claimed) before the commit lands.
        if joined:
            return
        before = looked.n
        joined.append(
            asyncio.create_task(other.generate(OWNER, "stamped", None, CacheControl(no_cache=True)))
        )
        await looked.reach(before + 1)

    with (
        interleave.hooked("prompts.complete.before_commit", arrive_before_commit),
        interleave.hooked("generate.before_claim", looked),
    ):
        led = await leader.generate(OWNER, "stamped", None, CacheControl(no_cache=True))
        late = await joined[0]
    assert generator.calls == 2  # the first version, then one regeneration for both
    assert late.result_id == led.result_id and late.coalesced


# -- 5. cancels stick ------------------------------------------------------------------------


async def test_a_run_cancelled_before_its_executor_acquires_it_never_runs(
    services: Services,
) -> None:
    extraction = service_for(services)
    request = RunRequest(TEXT, "t.md", ONTOLOGY, "o.ttl", ONE_AT_A_TIME)
    run = await extraction.create(OWNER, request, "builtin")
    seen = await services.runs.require(OWNER, run.id)  # what the executor read: pending
    inputs = await extraction.inputs(seen)
    cancelled = await services.runs.request_cancel(OWNER, run.id)  # another process
    assert cancelled.status == "cancelled"
    runner = ExtractionRunner(services.runs, services.blobs, lease_s=30, concurrency=1)
    assert await runner.execute(seen, inputs, asyncio.Event()) == "cancelled"
    assert await count(services.database, RunBatch) == 0
    assert (await services.runs.require(OWNER, run.id)).status == "cancelled"
    # An explicit resume, which read the cancellation, does run it.
    resumed = await services.runs.require(OWNER, run.id)
    assert await runner.execute(resumed, inputs, asyncio.Event()) == "completed"


async def test_a_cancel_from_another_process_stops_at_the_next_batch(
    services: Services,
) -> None:
    run, inputs = await new_run(services)
    seen = run
    saved = Counter()

    async def cancel_after_third() -> None:
        await saved()
        if saved.n == 3:  # another process asks; only the database carries the request
            asked = await services.runs.request_cancel(OWNER, run.id)
            assert asked.cancel_requested

    # The heartbeat (every lease/3 = 20 s) cannot be what notices it.
    runner = ExtractionRunner(services.runs, services.blobs, lease_s=60, concurrency=1)
    with interleave.hooked("runs.save_batch.committed", cancel_after_third):
        assert await runner.execute(seen, inputs, asyncio.Event()) == "cancelled"
    stopped = await services.runs.require(OWNER, run.id)
    assert stopped.total_batches > 10
    # The request lands just after batch 3 committed; the runner reads it at that boundary,
    # and no batch is claimed after it (a claim refuses a run asked to stop).
    assert stopped.status == "cancelled" and stopped.batches_done == 3
    counts = await services.runs.batch_counts(run.id)
    assert (counts.done, counts.running) == (3, 0)


async def test_an_extract_task_whose_run_is_cancelled_before_it_starts_ends_cancelled(
    services: Services,
) -> None:
    job = await services.jobs.create(OWNER, {"title": "extract"}, AUDIT)
    task, _ = await services.tasks.submit(
        job,
        submission(
            "extract", "x", text=TEXT, ontology=ONTOLOGY.decode(), chunk_size=300, overlap=30
        ),
        AUDIT,
    )

    async def cancel_from_elsewhere() -> None:
        # The task created its run and read it (pending); a cancel lands before it acquires.
        await services.runs.request_cancel(OWNER, task.id)

    worker = Worker(services, concurrency=1)
    running = asyncio.create_task(worker.run())
    try:
        with interleave.hooked("runs.before_acquire", cancel_from_elsewhere):
            found = await finished(services, task.id)
    finally:
        worker.stop()
        await running
    assert found.status == "cancelled"
    assert (await services.runs.require(OWNER, task.id)).status == "cancelled"
    assert await count(services.database, RunBatch) == 0


# -- suspected: a connection lost after a batch committed ------------------------------------


async def test_a_batch_committed_before_its_connection_dropped_counts_as_done(
    services: Services,
) -> None:
    run, inputs = await new_run(services)
    seen = run
    dropped: list[bool] = []

    async def drop_once() -> None:
        if not dropped:
            dropped.append(True)
            raise ConnectionResetError("connection lost after COMMIT")

    runner = ExtractionRunner(services.runs, services.blobs, lease_s=30, concurrency=1)
    with interleave.hooked("runs.save_batch.committed", drop_once):
        assert await runner.execute(seen, inputs, asyncio.Event()) == "completed"
    done = await services.runs.require(OWNER, run.id)
    assert dropped and done.batches_failed == 0 and done.batches_done == done.total_batches


# -- suspected: liveness by hostname:pid across PID namespaces -------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_a_holder_in_another_pid_namespace_is_never_declared_dead(
    services: Services,
) -> None:
    extraction = service_for(services)
    run = await extraction.create(
        OWNER, RunRequest(TEXT, "t.md", ONTOLOGY, "o.ttl", ONE_AT_A_TIME), "builtin"
    )
    pid = _dead_pid()
    # Same hostname, a pid that does not exist here: a live process in another container.
    others = [
        f"{socket.gethostname()}:{pid}",
        f"{socket.gethostname()}:{pid}:abc ns=00000000.1 start=1",
    ]
    for other in others:
        lease = await services.runs.acquire(run.id, "placeholder", 60)
        assert lease is not None
        async with services.database.transaction() as session:
            await session.execute(update(Run).where(Run.id == run.id).values(holder=other))
        seen = await services.runs.require(OWNER, run.id)
        runner = ExtractionRunner(services.runs, services.blobs, lease_s=60, concurrency=1)
        with pytest.raises(Exception, match="another process"):
            await runner.execute(seen, await extraction.inputs(seen), asyncio.Event())
        assert (await services.runs.require(OWNER, run.id)).lease_token == lease.token
        await services.runs.break_lease(run.id, lease.token)


def test_a_holder_of_this_namespace_that_exited_is_gone() -> None:
    mine = identity.holder()
    name, *facts = mine.split(" ")
    host, pid, nonce = name.split(":")
    assert not identity.is_gone(mine) and pid == str(os.getpid())
    dead = f"{host}:{_dead_pid()}:{nonce} {' '.join(facts)}"
    assert identity.is_gone(dead)
    reused = mine.replace("start=", "start=9")  # this pid, but a process started earlier
    assert identity.is_gone(reused)


def test_forked_children_get_their_own_id() -> None:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, identity.process_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    theirs = os.read(read, 200).decode()
    assert theirs.split(":")[2] != identity.process_id().split(":")[2]


# -- run leases by the database's clock ------------------------------------------------------


async def test_run_lease_expiry_is_judged_by_the_database_clock(services: Services) -> None:
    extraction = service_for(services)
    run = await extraction.create(
        OWNER, RunRequest(TEXT, "t.md", ONTOLOGY, "o.ttl", ONE_AT_A_TIME), "builtin"
    )
    lease = await services.runs.acquire(run.id, "holder", 30)
    assert lease is not None
    assert await services.runs.is_held(OWNER, run.id)
    held = await services.runs.require(OWNER, run.id)
    assert held.lease_expires_at is not None
    async with services.database.reading() as session:
        now = (await session.execute(select(services.database.driver.now()))).scalar_one()
    # The lease was stamped by the database: 30 s after the database's now, not Python's.
    assert 25 < (held.lease_expires_at - now).total_seconds() <= 30


# -- soak: the sweep looping beside workers --------------------------------------------------


async def test_sweep_looping_beside_workers_loses_no_committed_blob(
    settings: Settings, tmp_path: Path
) -> None:
    async with opened_services(
        settings, tmp_path, task_poll_s=0.05, worker_concurrency=8
    ) as services:
        job = await services.jobs.create(OWNER, {"title": "soak"}, AUDIT)
        tasks = [
            (
                await services.tasks.submit(
                    job, submission("sleep", f"s{i}", steps=1, step_s=0), AUDIT
                )
            )[0]
            for i in range(300)
        ]
        sweeps = 0

        async def sweep_forever() -> None:
            nonlocal sweeps
            while True:
                await sweep(services)
                sweeps += 1

        async def all_completed() -> bool:
            query = select(func.count()).select_from(Task).where(Task.status == "completed")
            async with services.database.reading() as session:
                done = int((await session.execute(query)).scalar_one()) == len(tasks)
            # Several sweeps, whatever the machine's speed: the first ran beside the workers.
            return done and sweeps > 3

        workers = [Worker(services) for _ in range(2)]
        running = [asyncio.create_task(worker.run()) for worker in workers]
        sweeper = asyncio.create_task(sweep_forever())
        try:
            await until(all_completed, 120)
        finally:
            sweeper.cancel()
            for worker in workers:
                worker.stop()
            await asyncio.gather(*running, sweeper, return_exceptions=True)
        await sweep(services)
        async with services.database.reading() as session:
            keys = (await session.execute(select(Artifact.blob_key))).scalars().all()
        assert len(keys) == 300
        # Counted at the blob store: every committed artifact still has its file.
        missing = [key for key in keys if not await services.blobs.exists(key)]
        assert missing == []
