"""The driver conformance suite: the same cases against every Driver (SQLite, PostgreSQL).

Each case calls the driver itself, on a migrated database, and checks what a repository
relies on: claim order and due time by the database's clock, fenced completion, the
combined complete-and-claim, submit-many's idempotency and per-row refusal, the upserts,
the fenced batch checkpoint, the hit read, the clock, wake-ups, the migration lock, the
ping and the classification of an unreachable database.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, bindparam, func, select, update

from genkeep.db.database import Database
from genkeep.db.drivers import Driver
from genkeep.db.drivers.base import (
    TASKS_CHANNEL,
    BatchCheckpoint,
    NewTask,
    ReadStatement,
    TaskClaim,
    TaskCompletion,
    WriteStatement,
)
from genkeep.db.drivers.wakeups import Wakeups
from genkeep.db.models import (
    ArtifactCounter,
    ArtifactLatest,
    Job,
    JobEvent,
    OntologyRecord,
    Prompt,
    RateBucket,
    Run,
    RunBatch,
    RunEntity,
    Task,
)
from genkeep.db.types import utc_from_driver, utcnow

OWNER = "alice"
TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
async def driver(database: Database) -> Driver:
    return database.driver


@pytest.fixture
async def job_id(database: Database) -> str:
    job = Job(id=str(uuid.uuid4()), owner_id=OWNER, title="job", sections=[], version=1)
    async with database.transaction() as session:
        session.add(job)
    return job.id


def new_task(job_id: str, key: str, **fields: Any) -> NewTask:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "owner_id": OWNER,
        "job_id": job_id,
        "kind": "noop",
        "idempotency_key": key,
        "request_hash": "h" * 64,
        "payload": {"key": key},
        "max_attempts": 3,
        "timeout_s": 300.0,
        "trace_id": TRACE,
        "actor": "test",
        "now": utcnow(),
    }
    return NewTask(**(values | fields))


async def submitted(driver: Driver, job_id: str, *keys: str) -> list[str]:
    outcomes = await driver.task_submit_many([new_task(job_id, key) for key in keys])
    ids = []
    for outcome in outcomes:
        assert outcome is not None and not isinstance(outcome, Exception)
        ids.append(outcome["id"])
    return ids


async def due_in(database: Database, task_id: str, seconds: float) -> None:
    """Make the task due ``seconds`` from now by the database's clock."""
    async with database.transaction() as session:
        await session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(run_after=database.driver.now_plus(seconds))
        )


async def db_now(database: Database) -> datetime:
    async with database.reading() as session:
        now: datetime = (await session.execute(select(database.driver.now()))).scalar_one()
    return now


async def events(database: Database, event_type: str) -> list[dict[str, Any]]:
    query = select(JobEvent.payload).where(JobEvent.event_type == event_type)
    async with database.reading() as session:
        return list((await session.execute(query.order_by(JobEvent.id))).scalars())


def claim(limit: int = 10, lease_s: float = 30.0, worker: str = "w1") -> TaskClaim:
    return TaskClaim(worker, str(uuid.uuid4()), lease_s, limit)


# -- the task queue ------------------------------------------------------------------------


async def test_claim_takes_due_tasks_oldest_due_first_by_the_database_clock(
    database: Database, driver: Driver, job_id: str
) -> None:
    late, early, future = await submitted(driver, job_id, "late", "early", "future")
    await due_in(database, late, -1)
    await due_in(database, early, -2)
    await due_in(database, future, 60)
    taken = claim(lease_s=30)
    rows = await driver.task_claim(taken)
    assert [row["id"] for row in rows] == [early, late]
    now = await db_now(database)
    for row in rows:
        assert row["status"] == "running" and row["lease_token"] == taken.token
        assert row["worker_id"] == "w1" and row["attempts"] == 1
        expires = utc_from_driver(row["lease_expires_at"])
        assert 25 < (expires - now).total_seconds() <= 30
    started = await events(database, "task.started")
    assert sorted(e["task_id"] for e in started) == sorted([early, late])
    assert await driver.task_claim(claim()) == []  # the future one is not due


async def test_claim_takes_at_most_the_limit(
    database: Database, driver: Driver, job_id: str
) -> None:
    await submitted(driver, job_id, "a", "b", "c")
    assert len(await driver.task_claim(claim(limit=2))) == 2
    assert len(await driver.task_claim(claim(limit=2))) == 1


async def test_completion_is_fenced_by_the_lease_token(
    database: Database, driver: Driver, job_id: str
) -> None:
    [task_id] = await submitted(driver, job_id, "one")
    taken = claim()
    await driver.task_claim(taken)
    stale = TaskCompletion(task_id, str(uuid.uuid4()), "w1", {"n": 0})
    assert await driver.task_complete_many([stale]) == set()
    owned = TaskCompletion(task_id, taken.token, "w1", {"n": 1})
    assert await driver.task_complete_many([owned]) == {task_id}
    assert await driver.task_complete_many([owned]) == set()  # completed once
    async with database.reading() as session:
        task = await session.get(Task, task_id)
    assert task is not None
    assert (task.status, task.result, task.lease_token) == ("completed", {"n": 1}, None)
    completed = [{"task_id": task_id, "kind": "noop", "artifacts": []}]
    assert await events(database, "task.completed") == completed
    assert await driver.task_complete_many([]) == set()


async def test_complete_and_claim_commits_both(
    database: Database, driver: Driver, job_id: str
) -> None:
    [first] = await submitted(driver, job_id, "first")
    taken = claim()
    await driver.task_claim(taken)
    [second] = await submitted(driver, job_id, "second")
    completion = TaskCompletion(first, taken.token, "w1", {"ok": True})
    following = claim()
    done, rows = await driver.task_complete_and_claim([completion], following)
    assert done == {first}
    assert [(row["id"], row["lease_token"]) for row in rows] == [(second, following.token)]
    done, rows = await driver.task_complete_and_claim([completion], claim())
    assert (done, rows) == (set(), [])


async def test_submit_many_is_idempotent_and_refuses_only_the_bad_row(
    database: Database, driver: Driver, job_id: str
) -> None:
    first = new_task(job_id, "k1")
    repeated = new_task(job_id, "k1")  # the same key again, in the same batch
    orphan = new_task(str(uuid.uuid4()), "k2")  # no such job: the database refuses it
    other = new_task(job_id, "k3")
    outcomes = await driver.task_submit_many([first, repeated, orphan, other])
    assert len(outcomes) == 4
    created, again, refused, created_too = outcomes
    assert created is not None and not isinstance(created, Exception)
    assert created["id"] == first.id and created["status"] == "queued"
    assert created["payload"] == {"key": "k1"}
    assert again is None
    assert isinstance(refused, Exception)
    assert created_too is not None and not isinstance(created_too, Exception)
    assert (await driver.task_submit_many([new_task(job_id, "k1")])) == [None]
    queued = await events(database, "task.queued")
    assert sorted(e["task_id"] for e in queued) == sorted([first.id, other.id])
    # Due now by the database's clock, so a claim takes them at once.
    assert {row["id"] for row in await driver.task_claim(claim())} == {first.id, other.id}


# -- upserts -------------------------------------------------------------------------------


def table(model: Any) -> Table:
    found: Table = model.__table__
    return found


async def test_bump_counter_counts_from_one(
    database: Database, driver: Driver, job_id: str
) -> None:
    keys = {"job_id": job_id, "kind": "pdf"}
    counts = []
    for _ in range(3):
        async with database.transaction() as session:
            statement = driver.bump_counter(table(ArtifactCounter), keys, "next_version")
            counts.append((await session.execute(statement)).scalar_one())
    assert counts == [1, 2, 3]


async def test_upsert_if_newer_keeps_the_greatest(
    database: Database, driver: Driver, job_id: str
) -> None:
    keys = {"job_id": job_id, "kind": "pdf"}
    for version in (2, 1, 3, 3):
        values = {"artifact_id": f"a{version}", "version": version, "updated_at": utcnow()}
        async with database.transaction() as session:
            await session.execute(
                driver.upsert_if_newer(table(ArtifactLatest), keys, values, "version")
            )
    async with database.reading() as session:
        latest = (await session.execute(select(ArtifactLatest))).scalars().one()
    assert (latest.artifact_id, latest.version) == ("a3", 3)


async def test_inserts_ignoring_conflicts(database: Database, driver: Driver) -> None:
    ontologies = table(OntologyRecord)
    async with database.transaction() as session:
        for text in ("first", "second"):
            values = {"content_hash": "h0", "canonical": text, "created_at": utcnow()}
            await session.execute(driver.insert_ignoring_conflicts(ontologies, values))
    rows = [
        {"content_hash": name, "canonical": name, "created_at": utcnow()}
        for name in ("h0", "h1", "h2")
    ]
    async with database.transaction() as session:
        statement = driver.insert_each_ignoring_conflicts(ontologies, "content_hash")
        inserted = (await session.execute(statement, rows)).scalars().all()
    assert sorted(inserted) == ["h1", "h2"]
    async with database.reading() as session:
        assert (await session.get(OntologyRecord, "h0")).canonical == "first"  # type: ignore[union-attr]


async def test_upsert_unless_keeps_a_protected_row(database: Database, driver: Driver) -> None:
    ontologies = table(OntologyRecord)

    async def put(canonical: str) -> bool:
        statement = driver.upsert_unless(
            ontologies,
            {"content_hash": "h"},
            {"canonical": canonical, "created_at": utcnow()},
            {"canonical": None},
            unless=ontologies.c.canonical == "frozen",
        )
        async with database.transaction() as session:
            return (await session.execute(statement)).first() is not None

    assert await put("draft") and await put("frozen")
    assert not await put("changed")
    async with database.reading() as session:
        assert (await session.get(OntologyRecord, "h")).canonical == "frozen"  # type: ignore[union-attr]


async def test_write_transient_runs_an_upsert_where_alone(
    database: Database, driver: Driver
) -> None:
    buckets = table(RateBucket)
    # Insert 1, else add one while under 3: a rate bucket's take in miniature.
    statement = WriteStatement(
        driver.upsert_where(
            buckets,
            ["name"],
            {"name": bindparam("name"), "requests": 1.0, "tokens": 0.0, "refilled_at": 0.0},
            {"requests": buckets.c.requests + 1},
            where=buckets.c.requests < 3,
            returning=["requests"],
        )
    )
    taken = [await driver.write_transient(statement, {"name": "b"}) for _ in range(4)]
    assert [None if row is None else row["requests"] for row in taken] == [1, 2, 3, None]
    async with database.reading() as session:
        stored = await session.execute(select(buckets.c.requests).where(buckets.c.name == "b"))
        assert stored.scalar_one() == 3  # committed on its own, and untouched when refused


# -- the batch checkpoint ------------------------------------------------------------------


async def leased_run(database: Database, *, cancel: bool = False) -> tuple[str, str]:
    run_id, token = str(uuid.uuid4()), str(uuid.uuid4())
    run = Run(
        id=run_id,
        owner_id=OWNER,
        status="running",
        input_name="t.md",
        input_sha256="0" * 64,
        input_blob_key="k",
        input_chars=1,
        ontology_hash="0" * 64,
        extractor_name="builtin",
        extractor_version="1",
        total_batches=3,
        batches_done=0,
        batches_failed=0,
        entities_found=0,
        cancel_requested=cancel,
        lease_token=token,
        lease_expires_at=utcnow() + timedelta(minutes=5),
    )
    async with database.transaction() as session:
        session.add(run)
    return run_id, token


def batch(run_id: str, token: str, index: int, *keys: str) -> BatchCheckpoint:
    return BatchCheckpoint(run_id, token, index, f"result {index}", f"sum {index}", keys, utcnow())


async def test_checkpoint_is_fenced_and_counted_once(database: Database, driver: Driver) -> None:
    run_id, token = await leased_run(database)
    stale = await driver.run_checkpoint(batch(run_id, str(uuid.uuid4()), 0, "a"))
    assert not stale.owned and not stale.saved
    first = await driver.run_checkpoint(batch(run_id, token, 0, "a", "b"))
    assert (first.owned, first.saved, first.entities_found) == (True, True, 2)
    again = await driver.run_checkpoint(batch(run_id, token, 0, "a", "b"))
    assert again.owned and not again.saved
    second = await driver.run_checkpoint(batch(run_id, token, 1, "b", "c"))
    assert (second.saved, second.entities_found, second.cancel_requested) == (True, 3, False)
    async with database.reading() as session:
        run = await session.get(Run, run_id)
        stored = (await session.execute(select(func.count()).select_from(RunBatch))).scalar()
        entities = (await session.execute(select(func.count()).select_from(RunEntity))).scalar()
    assert run is not None and (run.batches_done, run.entities_found) == (2, 3)
    assert (stored, entities) == (2, 3)


async def test_checkpoint_reports_a_cancel_request(database: Database, driver: Driver) -> None:
    run_id, token = await leased_run(database, cancel=True)
    saved = await driver.run_checkpoint(batch(run_id, token, 0))
    assert saved.saved and saved.cancel_requested
    repeated = await driver.run_checkpoint(batch(run_id, token, 0))
    assert not repeated.saved and repeated.cancel_requested


# -- reads, clock and snapshot -------------------------------------------------------------


async def test_hit_read(database: Database, driver: Driver) -> None:
    prompt = Prompt(
        id=str(uuid.uuid4()),
        owner_id=OWNER,
        profile_name="p",
        profile_key="p",
        normalized_hash="n" * 64,
        normalized_text="hi",
        prompt_text="Hi",
        status="ready",
        attempts=1,
        latest_version=0,
        lease_expires_at=datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    )
    async with database.transaction() as session:
        session.add(prompt)
    statement = ReadStatement(
        select(Prompt.id, Prompt.status, Prompt.lease_expires_at, driver.now().label("now")).where(
            Prompt.owner_id == bindparam("owner"), Prompt.id == bindparam("id")
        )
    )
    row = await driver.fetch_one(statement, {"owner": OWNER, "id": prompt.id})
    assert row is not None and (row["id"], row["status"]) == (prompt.id, "ready")
    assert utc_from_driver(row["lease_expires_at"]) == prompt.lease_expires_at
    assert abs(utc_from_driver(row["now"]) - utcnow()) < timedelta(seconds=5)
    assert await driver.fetch_one(statement, {"owner": "bob", "id": prompt.id}) is None


async def test_clock(database: Database, driver: Driver) -> None:
    async with database.reading() as session:
        now, later = (await session.execute(select(driver.now(), driver.now_plus(90.5)))).one()
    assert now.tzinfo is not None and later.tzinfo is not None
    assert abs(now - utcnow()) < timedelta(seconds=5)
    assert abs((later - now).total_seconds() - 90.5) < 0.01


async def test_snapshot_sees_one_state(database: Database) -> None:
    async with database.snapshot() as reader:
        count = select(func.count()).select_from(OntologyRecord)
        before = (await reader.execute(count)).scalar()
        async with database.transaction() as writer:
            writer.add(OntologyRecord(content_hash="x", canonical="x", created_at=utcnow()))
        assert (await reader.execute(count)).scalar() == before


# -- wake-ups, migration lock, health and errors -------------------------------------------


async def test_wake_ups_arrive_after_commit_only(database: Database, driver: Driver) -> None:
    heard: list[str] = []
    arrived = asyncio.Event()

    def on_message(payload: str) -> None:
        heard.append(payload)
        arrived.set()

    listener = await driver.listen(TASKS_CHANNEL, on_message)
    try:
        with pytest.raises(RuntimeError):
            async with database.transaction() as session:
                await driver.notify_tasks(session)
                raise RuntimeError("rolled back")
        async with database.transaction() as session:
            await driver.notify_tasks(session)
        if listener is None:  # this database sends none: in-process events and polling
            await asyncio.sleep(0.2)
            assert heard == []
            return
        await asyncio.wait_for(arrived.wait(), 10)
        await asyncio.sleep(0.2)
        assert heard == [""]  # the rolled-back one was never sent
    finally:
        if listener is not None:
            await listener.close()


async def test_wakeups_wake_a_waiting_worker(driver: Driver) -> None:
    wakeups = Wakeups(driver)
    await wakeups.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        loop.call_later(0.05, wakeups.notify_local)
        await wakeups.wait(30)
        assert loop.time() - started < 5
    finally:
        await wakeups.stop()


async def test_migration_lock_is_held_by_one_at_a_time(db_url: str) -> None:
    first, second = Database(db_url), Database(db_url)
    try:
        async with first.driver.migration_lock():
            waiting = asyncio.ensure_future(_hold(second))
            await asyncio.sleep(0.5)
            held_meanwhile = waiting.done()
        await asyncio.wait_for(waiting, 10)
        assert not held_meanwhile
    finally:
        await first.dispose()
        await second.dispose()


async def _hold(database: Database) -> None:
    async with database.driver.migration_lock():
        pass


async def test_ping(driver: Driver) -> None:
    await driver.ping()


@pytest.fixture
def refused_url(backend: str, tmp_path: Path) -> str:
    """A database that plainly refuses: no server on the port, or a folder as the file."""
    if backend == "postgresql":
        return "postgresql://postgres@127.0.0.1:9/genkeep"
    return f"sqlite:///{tmp_path}"


async def test_an_unreachable_database_is_unavailable(refused_url: str) -> None:
    database = Database(refused_url)
    try:
        with pytest.raises(Exception) as caught:
            await database.driver.ping()
        assert database.driver.is_unavailable(caught.value)
        assert not database.driver.is_unavailable(ValueError("a bug"))
    finally:
        await database.dispose()
        # aiosqlite's thread of the refused connection reports back to the loop as it ends:
        # let it end while the loop still runs.
        for thread in threading.enumerate():
            if thread.name.endswith("(_connection_worker_thread)"):
                await asyncio.to_thread(thread.join, 10)


async def test_a_migrated_database_is_not_new(driver: Driver) -> None:
    assert not driver.is_new()
