"""Extraction runs over HTTP (in process) and as an ``extract`` task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from rdflib import Graph
from sqlalchemy import func, select

from genkeep.config import Settings
from genkeep.db.models import RunBatch, Task
from genkeep.db.run_batches import RunLease
from genkeep.errors import LeaseLost
from genkeep.extract.manager import RunManager
from genkeep.extract.model import ChunkParams
from genkeep.extract.service import ExtractionSetup, RunRequest
from genkeep.services import Services
from genkeep.worker.context import TaskContext
from genkeep.worker.extract_task import extract
from genkeep.worker.runner import Worker
from tests.support.in_process import in_process

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
TEXT = (SAMPLES / "text.md").read_text()
ONTOLOGY = (SAMPLES / "ontology.ttl").read_text()
OWNER = "default"


@pytest.fixture
async def api(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, RunManager]]:
    configured = settings.model_copy(
        update={"blob_dir": tmp_path / "blobs", "public_url": "http://genkeep", "task_poll_s": 0.05}
    )
    async with in_process(configured) as app:
        yield app.client, app.services, app.runs


async def test_run_over_http(api: tuple[httpx.AsyncClient, Services, RunManager]) -> None:
    client, _, manager = api
    started = await client.post(
        "/v1/runs",
        json={
            "text": TEXT,
            "ontology": ONTOLOGY,
            "chunk_size": 300,
            "overlap": 30,
            "batch_size": 1,
        },
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    await manager.await_empty()
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "completed" and run["progress"] == 1.0
    assert run["batches_done"] == run["total_batches"] > 5
    assert run["outputs"]["validation"]["conforms"] is True
    graph = await client.get(f"/v1/runs/{run_id}/graph")
    assert graph.status_code == 302
    turtle = await client.get(graph.headers["location"])
    assert len(Graph().parse(data=turtle.content, format="turtle")) > 20
    again = await client.post(f"/v1/runs/{run_id}/resume")
    assert again.status_code == 409
    # The list filters by status in the database (the console's linkable filter).
    assert [r["id"] for r in (await client.get("/v1/runs?status=completed")).json()] == [run_id]
    assert (await client.get("/v1/runs?status=failed")).json() == []
    assert (await client.get("/v1/runs?status=nonsense")).status_code == 422
    # And by extractor, its short name or the stored one; an unknown name matches none.
    stored = run["extractor"].split()[0]
    short = stored.removeprefix("genkeep-")
    other = "llm" if short != "llm" else "builtin"
    for name in (short, stored):
        listed = await client.get(f"/v1/runs?extractor={name}&status=completed")
        assert [r["id"] for r in listed.json()] == [run_id], name
    assert (await client.get(f"/v1/runs?extractor={other}")).json() == []
    assert (await client.get(f"/v1/runs?extractor={short}&status=failed")).json() == []
    assert (await client.get("/v1/runs?extractor=nope")).json() == []
    assert (await client.get(f"/v1/runs?extractor={'x' * 65}")).status_code == 422


async def test_cancel_and_resume_over_http(
    api: tuple[httpx.AsyncClient, Services, RunManager],
) -> None:
    client, _, manager = api
    long_text = "\n\n".join([TEXT] * 20)
    run_id = (
        await client.post(
            "/v1/runs",
            json={
                "text": long_text,
                "ontology": ONTOLOGY,
                "chunk_size": 300,
                "overlap": 30,
                "batch_size": 1,
            },
        )
    ).json()["id"]
    for _ in range(500):
        if (await client.get(f"/v1/runs/{run_id}")).json()["batches_done"] >= 3:
            break
        await asyncio.sleep(0.01)
    cancelled = await client.post(f"/v1/runs/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    await manager.await_empty()
    stopped = (await client.get(f"/v1/runs/{run_id}")).json()
    assert stopped["status"] == "cancelled" and stopped["batches_done"] < stopped["total_batches"]
    assert (await client.get(f"/v1/runs/{run_id}/graph")).status_code == 404
    assert (await client.post(f"/v1/runs/{run_id}/resume")).status_code == 202
    await manager.await_empty()
    assert (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"text": "x", "ontology": "this is not turtle {"}, 422),
        ({"text": "x", "ontology": ONTOLOGY, "chunk_size": 10, "overlap": 10}, 422),
        ({"text": "x", "ontology": ONTOLOGY, "extractor": "nope"}, 422),
        ({"text": "x"}, 422),
    ],
)
async def test_bad_run_input(
    api: tuple[httpx.AsyncClient, Services, RunManager], body: dict[str, object], status: int
) -> None:
    client, _, _ = api
    response = await client.post("/v1/runs", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/runs")).json() == []


async def test_extract_task_stores_graph_artifacts(
    api: tuple[httpx.AsyncClient, Services, RunManager],
) -> None:
    client, services, _ = api
    job = (await client.post("/v1/jobs", json={"title": "graph"})).json()
    task = (
        await client.post(
            f"/v1/jobs/{job['id']}/tasks",
            headers={"Idempotency-Key": "x"},
            json={
                "kind": "extract",
                "payload": {"text": TEXT, "ontology": ONTOLOGY, "chunk_size": 500, "overlap": 50},
            },
        )
    ).json()
    worker = Worker(services)
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(1000):
            found = (await client.get(f"/v1/tasks/{task['id']}")).json()
            if found["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await running
    assert found["status"] == "completed", found
    assert found["result"]["run_id"] == task["id"] and found["result"]["conforms"]
    kinds = {a["kind"]: a for a in (await client.get(f"/v1/jobs/{job['id']}/artifacts")).json()}
    assert set(kinds) == {"ttl", "jsonld", "jsonl"} and kinds["ttl"]["version"] == 1


def _request(text: str = TEXT) -> RunRequest:
    return RunRequest(text, "input.md", ONTOLOGY.encode(), "ontology.ttl", ChunkParams(500, 50, 2))


async def _submit_extract(client: httpx.AsyncClient, key: str) -> tuple[str, str]:
    job = (await client.post("/v1/jobs", json={"title": "graph"})).json()
    task = (
        await client.post(
            f"/v1/jobs/{job['id']}/tasks",
            headers={"Idempotency-Key": key},
            json={
                "kind": "extract",
                "payload": {"text": TEXT, "ontology": ONTOLOGY, "chunk_size": 500, "overlap": 50},
            },
        )
    ).json()
    return job["id"], task["id"]


async def _work_until_finished(services: Services, task_id: str) -> Task:
    worker = Worker(services)
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(1500):
            found = await services.tasks.get(OWNER, task_id)
            if found is not None and found.status in ("completed", "failed"):
                return found
            await asyncio.sleep(0.02)
        raise AssertionError("the extract task did not finish")
    finally:
        worker.stop()
        await running


async def test_extract_task_retry_after_its_run_completed_stores_the_graph(
    api: tuple[httpx.AsyncClient, Services, RunManager],
) -> None:
    # The first attempt finishes the run, then dies before committing the task: the retry
    # must store the finished graph, not fail on a run that can no longer be acquired.
    client, services, _ = api
    job_id, task_id = await _submit_extract(client, "dies-after-run")
    [(task, lease)] = await services.tasks.claim("doomed", 0.3, 1)
    context = TaskContext(task=task, lease=lease, tasks=services.tasks, services=services)
    await extract(context)  # its output is never committed: the worker "dies" here
    run = await services.runs.require(OWNER, task_id)
    assert run.status == "completed"
    await asyncio.sleep(0.4)
    assert await services.tasks.reap_expired() == 1
    done = await _work_until_finished(services, task_id)
    assert done.status == "completed" and done.attempts == 2, done.error
    again = await services.runs.require(OWNER, task_id)
    assert again.batches_done == run.batches_done and again.finished_at == run.finished_at
    kinds = {a["kind"]: a for a in (await client.get(f"/v1/jobs/{job_id}/artifacts")).json()}
    assert set(kinds) == {"ttl", "jsonld", "jsonl"} and kinds["ttl"]["version"] == 1


async def test_extract_task_waits_out_a_dead_owners_run_lease(
    api: tuple[httpx.AsyncClient, Services, RunManager],
) -> None:
    client, services, _ = api
    services.settings = services.settings.model_copy(update={"extract_lease_s": 1.0})
    services.extraction.setup = ExtractionSetup.of(services.settings)
    job_id, task_id = await _submit_extract(client, "run-still-leased")
    run = await services.extraction.create(
        OWNER, _request(), "builtin", job_id=job_id, run_id=task_id
    )
    # A process on another host held the run and died; its lease runs out in a second.
    assert await services.runs.acquire(run.id, "elsewhere:1", lease_s=1.0) is not None
    held = await services.runs.require(OWNER, run.id)
    assert held.holder == "elsewhere:1" and held.lease_expires_at is not None
    started = time.monotonic()
    done = await _work_until_finished(services, task_id)
    assert done.status == "completed" and done.attempts == 1, done.error
    assert time.monotonic() - started >= 1.0 - 0.05  # it waited the lease out
    assert (await services.runs.require(OWNER, run.id)).status == "completed"
    # Counted in the database: no batch was written while the dead owner's lease was live.
    async with services.database.reading() as session:
        first_write = (
            await session.execute(
                select(func.min(RunBatch.updated_at)).where(RunBatch.run_id == run.id)
            )
        ).scalar_one()
    assert first_write is not None and first_write >= held.lease_expires_at


async def test_resume_and_cancel_runs_whose_owner_died(
    api: tuple[httpx.AsyncClient, Services, RunManager],
) -> None:
    client, services, manager = api
    dead, cancelled, alive = [
        await services.extraction.create(OWNER, _request(), "builtin") for _ in range(3)
    ]
    for run, lease_s in ((dead, 0.2), (cancelled, 0.2), (alive, 60)):
        assert await services.runs.acquire(run.id, "elsewhere:1", lease_s=lease_s) is not None
    await asyncio.sleep(0.3)
    # A live owner keeps its run: resume is refused, cancel is only requested.
    assert (await client.post(f"/v1/runs/{alive.id}/resume")).status_code == 409
    asked = (await client.post(f"/v1/runs/{alive.id}/cancel")).json()
    assert asked["status"] == "running" and asked["cancel_requested"] is True
    # An owner whose lease expired is gone: its run resumes here, or is cancelled at once.
    assert (await client.post(f"/v1/runs/{dead.id}/resume")).status_code == 202
    await manager.await_empty()
    assert (await client.get(f"/v1/runs/{dead.id}")).json()["status"] == "completed"
    stopped = (await client.post(f"/v1/runs/{cancelled.id}/cancel")).json()
    assert stopped["status"] == "cancelled"
    with pytest.raises(LeaseLost):  # the dead owner, were it to wake, is fenced out
        await services.runs.heartbeat(RunLease(cancelled.id, "any-old-token"), 30)


async def test_extract_task_takes_chunking_from_settings_and_caps_its_input(
    api: tuple[httpx.AsyncClient, Services, RunManager],
) -> None:
    client, services, _ = api
    services.settings = services.settings.model_copy(
        update={"extract_chunk_size": 300, "extract_overlap": 30, "extract_batch_size": 3}
    )
    # As a process started on these settings sets its runs up.
    services.extraction.setup = ExtractionSetup.of(services.settings)
    job = (await client.post("/v1/jobs", json={"title": "graph"})).json()

    async def submit(key: str, text: str) -> str:
        response = await client.post(
            f"/v1/jobs/{job['id']}/tasks",
            headers={"Idempotency-Key": key},
            json={"kind": "extract", "payload": {"text": text, "ontology": ONTOLOGY}},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    configured = await submit("defaults", TEXT)
    done = await _work_until_finished(services, configured)
    assert done.status == "completed", done.error
    run = await services.runs.require(OWNER, configured)
    assert (run.chunk_size, run.chunk_overlap, run.batch_size) == (300, 30, 3)

    services.settings = services.settings.model_copy(update={"max_run_input_bytes": 100})
    services.extraction.setup = ExtractionSetup.of(services.settings)
    too_big = await submit("too-big", TEXT)
    refused = await _work_until_finished(services, too_big)
    assert refused.status == "failed" and refused.attempts == 1
    assert refused.error == "text is larger than 100 bytes"
    assert await services.runs.get(OWNER, too_big) is None
