"""Extraction runs on SQLite and PostgreSQL: checkpoints (I6), chunk parameters (I7), zero
batches (I8), isolation (I11), the run manager (I13), failures and checksums."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
from rdflib import Graph
from sqlalchemy import func, select, text, update

from genkeep.config import Settings
from genkeep.db.models import Run, RunBatch, RunEntity
from genkeep.db.runs import Checkpoint
from genkeep.errors import LeaseLost, ManifestMismatch, RunActive
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.chunking import batches as make_batches
from genkeep.extract.chunking import chunk_text
from genkeep.extract.manager import RunManager
from genkeep.extract.model import Chunk, ChunkParams, ChunkResult, OntologyIndexLike
from genkeep.extract.runner import ExtractionRunner, RunProgress
from genkeep.extract.service import ExtractionService, RunRequest
from genkeep.services import Services, close_services, open_services

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
ONTOLOGY = (SAMPLES / "ontology.ttl").read_bytes()
TEXT = (SAMPLES / "text.md").read_text()
OWNER = "alice"
SMALL = ChunkParams(size=400, overlap=40, batch_size=2)


class FlakyExtractor(BuiltinExtractor):
    """The built-in extractor, failing once on the chunk that holds ``poison``."""

    def __init__(self, poison: str) -> None:
        self.poison, self.failed = poison, False

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        if self.poison in chunk.text and not self.failed:
            self.failed = True
            raise RuntimeError("model overloaded")
        return await super().extract(chunk, index)


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    opened = await open_services(settings.model_copy(update={"blob_dir": tmp_path / "blobs"}))
    try:
        yield opened
    finally:
        await close_services(opened)


def service_for(services: Services, extractor: BuiltinExtractor | None = None) -> ExtractionService:
    chosen = extractor or BuiltinExtractor()
    return ExtractionService(
        services.runs,
        services.blobs,
        {"builtin": chosen, chosen.name: chosen},
        services.extraction.setup,
    )


async def run_to_end(
    services: Services, service: ExtractionService, run_id: str, stop_after: int | None = None
) -> str:
    found = await services.runs.require(OWNER, run_id)
    inputs = await service.inputs(found)
    runner = ExtractionRunner(services.runs, services.blobs, lease_s=5, concurrency=2)
    cancel = asyncio.Event()

    def progress(state: RunProgress) -> None:
        if stop_after is not None and state.done >= stop_after:
            cancel.set()

    return await runner.execute(found, inputs, cancel, progress)


async def graph_of(services: Services, run_id: str) -> bytes:
    found = await services.runs.require(OWNER, run_id)
    assert found.outputs is not None
    return await services.blobs.get(found.outputs["turtle"]["key"])


async def test_run_completes_with_valid_grounded_graph(services: Services) -> None:
    service = service_for(services)
    run = await service.create(
        OWNER, RunRequest(TEXT, "text.md", ONTOLOGY, "o.ttl", SMALL), "builtin"
    )
    assert await run_to_end(services, service, run.id) == "completed"
    done = await services.runs.require(OWNER, run.id)
    assert done.batches_done == done.total_batches > 3 and done.entities_found > 10
    assert done.outputs is not None and done.outputs["validation"]["conforms"] is True
    graph = Graph().parse(data=await graph_of(services, run.id), format="turtle")
    assert len(graph) > 20
    import json

    mentions = (await services.blobs.get(done.outputs["jsonl"]["key"])).decode().splitlines()
    assert len(mentions) > 10  # the loop below checks something
    for line in mentions:
        mention = json.loads(line)
        assert TEXT[mention["start"] : mention["end"]] == mention["surface"]
    spans = [(json.loads(m)["start"], json.loads(m)["class"]) for m in mentions]
    assert len(spans) == len(set(spans))  # found twice in an overlap, counted once


async def test_zero_batches(services: Services) -> None:
    service = service_for(services)
    run = await service.create(
        OWNER, RunRequest("  \n ", "empty.txt", ONTOLOGY, "o.ttl", SMALL), "builtin"
    )
    assert await run_to_end(services, service, run.id) == "completed"
    done = await services.runs.require(OWNER, run.id)
    assert done.total_batches == 0 and done.outputs is not None
    assert done.outputs["counts"]["batches"] == 0
    assert len(Graph().parse(data=await graph_of(services, run.id), format="turtle")) == 0
    assert await services.blobs.get(done.outputs["jsonl"]["key"]) == b""


async def test_resume_uses_stored_chunk_parameters(services: Services) -> None:
    service = service_for(services)
    params = ChunkParams(size=300, overlap=30, batch_size=1)
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", params), "builtin")
    assert await run_to_end(services, service, run.id, stop_after=3) == "cancelled"
    stopped = await services.runs.require(OWNER, run.id)
    assert 3 <= stopped.batches_done < stopped.total_batches
    assert await run_to_end(services, service, run.id) == "completed"
    resumed = await services.runs.require(OWNER, run.id)
    assert (resumed.chunk_size, resumed.chunk_overlap, resumed.batch_size) == (300, 30, 1)
    assert resumed.total_batches == stopped.total_batches
    fresh = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", params), "builtin")
    await run_to_end(services, service, fresh.id)
    assert await graph_of(services, run.id) == await graph_of(services, fresh.id)


class CountingExtractor(BuiltinExtractor):
    """The built-in extractor, recording the index of every chunk it is asked to extract;
    with ``hang_after`` set, every call after that many never returns (a stuck model)."""

    def __init__(self, hang_after: int | None = None) -> None:
        self.calls: list[int] = []
        self.hang_after = hang_after
        self.two_stuck = asyncio.Event()

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        self.calls.append(chunk.index)
        if self.hang_after is not None and len(self.calls) > self.hang_after:
            if len(self.calls) >= self.hang_after + 2:
                self.two_stuck.set()
            await asyncio.Event().wait()
        return await super().extract(chunk, index)


async def committed(services: Services, run_id: str) -> set[int]:
    """The batches the database holds as done: the source of truth after an interruption."""
    query = select(RunBatch.batch_index).where(RunBatch.run_id == run_id, RunBatch.status == "done")
    async with services.database.reading() as session:
        return set((await session.execute(query)).scalars())


def chunks_of(batches: set[int], params: ChunkParams) -> list[int]:
    """The chunk indexes of ``batches``, in order: the calls a resume must make, no more."""
    chunks = chunk_text(TEXT, params)
    plan = make_batches(chunks, params.batch_size)
    return sorted(chunk.index for i in batches for chunk in plan[i])


RESUME_PARAMS = ChunkParams(size=300, overlap=30, batch_size=3)


async def resume_counting(services: Services, run_id: str) -> list[int]:
    """Resume ``run_id`` to its end; the chunk indexes the extractor was called for."""
    counting = CountingExtractor()
    assert await run_to_end(services, service_for(services, counting), run_id) == "completed"
    return counting.calls


async def test_resume_after_cancel_extracts_exactly_the_uncommitted_batches(
    services: Services,
) -> None:
    service = service_for(services)
    run = await service.create(
        OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", RESUME_PARAMS), "builtin"
    )
    assert await run_to_end(services, service, run.id, stop_after=2) == "cancelled"
    total = (await services.runs.require(OWNER, run.id)).total_batches
    done = await committed(services, run.id)
    assert 2 <= len(done) < total
    calls = await resume_counting(services, run.id)
    # Counted at the extractor: each chunk of an uncommitted batch once, nothing else.
    assert sorted(calls) == chunks_of(set(range(total)) - done, RESUME_PARAMS)
    assert len(calls) == len(set(calls))


async def test_resume_after_an_interrupted_execution_extracts_exactly_the_uncommitted_batches(
    services: Services,
) -> None:
    # The execution is cancelled (shutdown, a killed task group) while a call hangs mid-batch:
    # that batch and any other in flight were never committed, and only they are redone.
    stuck = CountingExtractor(hang_after=7)
    service = service_for(services, stuck)
    run = await service.create(
        OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", RESUME_PARAMS), "builtin"
    )
    found = await services.runs.require(OWNER, run.id)
    runner = ExtractionRunner(services.runs, services.blobs, lease_s=5, concurrency=2)
    execution = asyncio.create_task(
        runner.execute(found, await service.inputs(found), asyncio.Event())
    )
    await stuck.two_stuck.wait()  # both workers (concurrency 2) are stuck inside a batch
    execution.cancel()
    with pytest.raises(asyncio.CancelledError):
        await execution
    interrupted = await services.runs.require(OWNER, run.id)
    assert interrupted.status == "interrupted" and interrupted.lease_token is None
    done = await committed(services, run.id)
    assert 0 < len(done) < interrupted.total_batches
    calls = await resume_counting(services, run.id)
    assert sorted(calls) == chunks_of(set(range(interrupted.total_batches)) - done, RESUME_PARAMS)
    assert len(calls) == len(set(calls))


async def test_run_without_stored_parameters_resumes_on_defaults(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    service = service_for(services)
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    async with services.database.transaction() as session:
        await session.execute(
            update(Run)
            .where(Run.id == run.id)
            .values(chunk_size=None, chunk_overlap=None, batch_size=None)
        )
    with caplog.at_level(logging.WARNING):
        assert await run_to_end(services, service, run.id) == "completed"
    assert "without chunk parameters" in caplog.text
    done = await services.runs.require(OWNER, run.id)
    assert (done.chunk_size, done.chunk_overlap, done.batch_size) == (4000, 200, 8)


async def test_changed_input_or_ontology_is_refused(services: Services) -> None:
    service = service_for(services)
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    found = await services.runs.require(OWNER, run.id)
    with pytest.raises(ManifestMismatch, match="input differs"):
        await service.inputs(found, text=TEXT + "more")
    other = ONTOLOGY.replace(b"Tram", b"Streetcar")
    with pytest.raises(ManifestMismatch, match="ontology differs"):
        await service.inputs(found, ontology=other, ontology_name="o.ttl")
    newer = BuiltinExtractor()
    newer.version = "2"
    with pytest.raises(ManifestMismatch, match="extracted with"):
        await service_for(services, newer).inputs(found)


async def test_failed_batch_is_recorded_and_retried_on_resume(services: Services) -> None:
    service = service_for(services, FlakyExtractor(poison=TEXT[1200:1230]))
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    assert await run_to_end(services, service, run.id) == "failed"
    failed = await services.runs.require(OWNER, run.id)
    assert failed.batches_failed == 1 and failed.batches_done == failed.total_batches - 1
    async with services.database.reading() as session:
        statuses = dict(
            (
                await session.execute(
                    select(RunBatch.status, func.count())
                    .where(RunBatch.run_id == run.id)
                    .group_by(RunBatch.status)
                )
            ).all()
        )
    assert statuses["failed"] == 1
    assert await run_to_end(services, service, run.id) == "completed"


async def test_batch_and_checkpoint_roll_back_together(services: Services, backend: str) -> None:
    service = service_for(services)
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    lease = await services.runs.acquire(run.id, "test", 30)
    assert lease is not None
    statements = (
        [
            "CREATE FUNCTION no_checkpoint() RETURNS trigger AS $$ BEGIN "
            "IF NEW.batches_done <> OLD.batches_done THEN RAISE EXCEPTION 'disk full'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER no_checkpoint BEFORE UPDATE ON runs FOR EACH ROW "
            "EXECUTE FUNCTION no_checkpoint()",
        ]
        if backend == "postgresql"
        else [
            "CREATE TRIGGER no_checkpoint BEFORE UPDATE OF batches_done ON runs "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        ]
    )
    async with services.database.transaction() as session:
        for statement in statements:
            await session.execute(text(statement))
    with pytest.raises(Exception, match="disk full"):
        await services.runs.save_batch(lease, 0, '{"start":0}', ["a|b", "c|d"])
    async with services.database.reading() as session:
        batches = (await session.execute(select(func.count()).select_from(RunBatch))).scalar()
        entities = (await session.execute(select(func.count()).select_from(RunEntity))).scalar()
    assert (batches, entities) == (0, 0)
    assert (await services.runs.require(OWNER, run.id)).batches_done == 0


async def test_concurrent_saves_of_one_batch_leave_one_row(services: Services) -> None:
    service = service_for(services)
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    lease = await services.runs.acquire(run.id, "test", 30)
    assert lease is not None
    saved = await asyncio.gather(
        *[services.runs.save_batch(lease, 7, '{"start":0}', ["k|x"]) for _ in range(10)],
        return_exceptions=True,
    )
    # one save, one new entity; the others found it done
    assert [s.entities for s in saved if isinstance(s, Checkpoint) and s.saved] == [1]
    assert all(isinstance(s, Checkpoint) for s in saved)
    async with services.database.reading() as session:
        rows = (await session.execute(select(func.count()).select_from(RunBatch))).scalar()
    found = await services.runs.require(OWNER, run.id)
    assert rows == 1 and found.batches_done == 1 and found.entities_found == 1


async def test_checksum_mismatch_is_redone(services: Services) -> None:
    service = service_for(services)
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    await run_to_end(services, service, run.id, stop_after=2)
    async with services.database.transaction() as session:
        await session.execute(
            update(RunBatch)
            .where(RunBatch.run_id == run.id, RunBatch.batch_index == 0)
            .values(result='{"start":0,"entities":[],"relations":[]}')
        )
    assert 0 not in await services.runs.done_batches(run.id)
    assert await run_to_end(services, service, run.id) == "completed"
    fresh = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    await run_to_end(services, service, fresh.id)
    assert await graph_of(services, run.id) == await graph_of(services, fresh.id)


class BlockedExtractor(BuiltinExtractor):
    """The built-in extractor, failing every chunk that holds ``poison`` until unblocked."""

    def __init__(self, poison: str) -> None:
        self.poison, self.blocked = poison, True

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        if self.blocked and self.poison in chunk.text:
            raise RuntimeError("model overloaded")
        return await super().extract(chunk, index)


class CorruptingExtractor(BuiltinExtractor):
    """The built-in extractor; on the chunk holding ``trigger`` it runs ``corrupt`` first."""

    def __init__(self, trigger: str, corrupt: Callable[[], Awaitable[None]]) -> None:
        self.trigger, self.corrupt, self.fired = trigger, corrupt, False

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        if self.trigger in chunk.text and not self.fired:
            self.fired = True
            await self.corrupt()
        return await super().extract(chunk, index)


async def test_checksum_mismatch_found_at_merge_is_redone_before_completing(
    services: Services,
) -> None:
    # Batch 0 is stored, then damaged while the last batch is extracted: the merge finds
    # it, and the same execution redoes it and merges again, byte-identical.
    run_id = ""

    async def damage_batch_zero() -> None:
        async with services.database.transaction() as session:
            await session.execute(
                update(RunBatch)
                .where(RunBatch.run_id == run_id, RunBatch.batch_index == 0)
                .values(result='{"start":0,"entities":[],"relations":[]}')
            )

    corrupting = CorruptingExtractor(TEXT.rstrip()[-60:-30], damage_batch_zero)
    service = service_for(services, corrupting)
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    run_id = run.id
    found = await services.runs.require(OWNER, run.id)
    runner = ExtractionRunner(services.runs, services.blobs, lease_s=5, concurrency=1)
    assert await runner.execute(found, await service.inputs(found), asyncio.Event()) == "completed"
    assert corrupting.fired
    fresh = await service_for(services).create(
        OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin"
    )
    await run_to_end(services, service_for(services), fresh.id)
    assert await graph_of(services, run.id) == await graph_of(services, fresh.id)
    done = await services.runs.require(OWNER, run.id)
    assert done.batches_done == done.total_batches


async def test_concurrent_runs_share_nothing(services: Services) -> None:
    # Both runs stop short of the end (their last chunk fails), keeping their registries
    # (I11) to compare; once resumed to completion, the registries are released.
    extractor = BlockedExtractor(poison="Last words.")
    service = service_for(services, extractor)
    first_text = "The tram line runs through the city. " * 30 + "Last words."
    second_text = "The bus stop is near the city council. " * 30 + "Last words."
    async with RunManager() as manager:
        runs, prepared = [], []
        for body in (first_text, second_text):
            run = await service.create(
                OWNER, RunRequest(body, "t", ONTOLOGY, "o.ttl", SMALL), "builtin"
            )
            runs.append(run)
            prepared.append(await service.inputs(run))
        # Both started before either can end: reading inputs yields to a started run.
        for run, inputs in zip(runs, prepared, strict=True):
            runner = ExtractionRunner(services.runs, services.blobs, lease_s=5)
            manager.start(run.id, partial(runner.execute, run, inputs))
        assert manager.active_run_count == 2
        await manager.await_empty()

    async def registries() -> list[set[str]]:
        found = []
        async with services.database.reading() as session:
            for run in runs:
                query = select(RunEntity.entity_key).where(RunEntity.run_id == run.id)
                found.append(set((await session.execute(query)).scalars()))
        return found

    assert [(await services.runs.require(OWNER, r.id)).status for r in runs] == ["failed"] * 2
    first, second = await registries()
    assert any("tram" in k.lower() for k in first) and not any("tram" in k.lower() for k in second)
    assert any("bus" in k.lower() for k in second) and not any("bus" in k.lower() for k in first)
    extractor.blocked = False
    assert [await run_to_end(services, service, r.id) for r in runs] == ["completed"] * 2
    assert await registries() == [set(), set()]


async def test_run_manager_lifecycle() -> None:
    gates = {name: asyncio.Event() for name in ("a", "b", "c")}
    stopped: list[str] = []

    def body(name: str):  # type: ignore[no-untyped-def]
        async def run(cancel: asyncio.Event) -> str:
            while not gates[name].is_set():
                if cancel.is_set():
                    stopped.append(name)
                    return "cancelled"
                await asyncio.sleep(0.01)
            return "completed"

        return run

    async with RunManager() as manager:
        manager.start("a", body("a"))
        manager.start("b", body("b"))
        with pytest.raises(RunActive):
            manager.start("a", body("a"))
        assert manager.active_run_count == 2 and manager.is_active("a")
        assert manager.cancel("b") and not manager.cancel("nope")
        await asyncio.sleep(0.05)
        assert stopped == ["b"] and manager.active_run_count == 1
        waiting = asyncio.create_task(manager.await_all())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        gates["a"].set()
        await waiting
        assert manager.active_run_count == 0
        await manager.await_empty()
        manager.start("c", body("c"))
        empty = asyncio.create_task(manager.await_empty())
        await asyncio.sleep(0.05)
        assert not empty.done()
    # leaving the block cancels "c" at its boundary and waits: nothing is left running
    assert stopped == ["b", "c"] and manager.active_run_count == 0
    await empty


async def test_lease_fences_a_second_owner(services: Services) -> None:
    service = service_for(services)
    run = await service.create(OWNER, RunRequest(TEXT, "t", ONTOLOGY, "o.ttl", SMALL), "builtin")
    first = await services.runs.acquire(run.id, "a:1", 0.2)
    assert first is not None and await services.runs.acquire(run.id, "b:2", 30) is None
    await asyncio.sleep(0.3)
    second = await services.runs.acquire(run.id, "b:2", 30)
    assert second is not None
    with pytest.raises(LeaseLost):
        await services.runs.save_batch(first, 0, '{"start":0}', [])
    assert (await services.runs.save_batch(second, 0, '{"start":0}', [])).saved
