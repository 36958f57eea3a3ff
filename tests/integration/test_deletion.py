"""Deleting a job, a prompt and a whole owner, on SQLite and PostgreSQL (I17): everything of
the target goes, nothing of anyone else; 404 for what is gone; an audit record without the
content; in-flight work cancelled first; a deletion cut short is finished by the sweep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, insert, literal, select, update

from genkeep.config import Settings
from genkeep.db.artifacts import NewArtifact
from genkeep.db.deletions import DeletionStore
from genkeep.db.jobs import Audit, FileInfo
from genkeep.db.models import (
    ApiKey,
    Artifact,
    ArtifactCounter,
    Deletion,
    Job,
    JobEvent,
    Prompt,
    Result,
    Run,
    RunBatch,
    RunChange,
    SpendLimit,
    Task,
    TaskChange,
    UsageEntry,
)
from genkeep.db.spend import Limits
from genkeep.db.tasks import Submission
from genkeep.db.types import utcnow
from genkeep.extract.model import ChunkParams
from genkeep.extract.service import RunRequest
from genkeep.ops import deletion
from genkeep.ops.sweep import sweep
from genkeep.services import Services
from genkeep.worker.runner import Worker
from tests.support.in_process import InProcess, in_process

AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
ALICE, BOB = {"X-Owner": "alice"}, {"X-Owner": "bob"}
ADMIN = {"Authorization": "Bearer root-token"}
# Tables with an owner column; what `state` counts per owner.
OWNED = (
    Job, Task, TaskChange, JobEvent, Artifact, Run, RunChange, Prompt, Result, ApiKey, UsageEntry
)  # fmt: skip


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[InProcess]:
    configured = settings.model_copy(
        update={
            "blob_dir": tmp_path / "blobs",
            "owner_header": "X-Owner",
            "admin_token": SecretStr("root-token"),
            "task_lease_s": 3,
        }
    )
    async with in_process(configured) as app:
        yield app


@dataclass
class Seeded:
    job: str
    task: str
    artifact: str
    run: str
    prompt: str


async def seed(services: Services, owner: str, title: str = "secret title") -> Seeded:
    """A job with a file, a completed task and its artifact, a completed extraction run; a
    prompt with two versions; an API key."""
    job = await services.jobs.create(owner, {"title": title}, AUDIT)
    info = await services.blobs.put(
        f"owners/{owner}/jobs/{job.id}/files/{int(time.time())}-ab-cd", b"f", content_type="x/y"
    )
    await services.jobs.attach_file(
        owner, job.id, FileInfo("f.txt", 1, info.sha256, "text/plain", info.key), AUDIT
    )
    submission = Submission("noop", {}, f"key-{job.id}", 3, timedelta(hours=1))
    task, _ = await services.tasks.submit(job, submission, AUDIT)
    [(_, lease)] = await services.tasks.claim("seed", 30, 1)
    key = f"owners/{owner}/jobs/{job.id}/tasks/{task.id}/1/out.txt"
    info = await services.blobs.put(key, b"out", content_type="text/plain")
    new = NewArtifact("txt", key, "out.txt", "text/plain", info.size, info.sha256)
    [artifact] = await services.tasks.complete(lease, {}, [new])
    text = (SAMPLES / "text.md").read_text()[:1500]
    request = RunRequest(
        text, "t.md", (SAMPLES / "ontology.ttl").read_bytes(), "o.ttl", ChunkParams(400, 40, 2)
    )
    run = await services.extraction.create(owner, request, "builtin", job_id=job.id)
    # Completed by hand (an extraction takes seconds): a batch, a document, the outputs.
    document = f"owners/{owner}/runs/{run.id}/graph.ttl"
    await services.blobs.put(document, b"<a> <b> <c> .", content_type="text/turtle")
    async with services.database.transaction() as session:
        await session.execute(
            insert(RunBatch).values(
                run_id=run.id,
                batch_index=0,
                status="done",
                result="{}",
                checksum="-",
                attempts=1,
                updated_at=utcnow(),
            )
        )
        outputs = {"turtle": {"key": document, "filename": "graph.ttl"}}
        await session.execute(
            update(Run)
            .where(Run.id == run.id)
            .values(status="completed", outputs=outputs, finished_at=utcnow(), updated_at=utcnow())
        )
    first = await services.generate.generate(owner, f"a note of {owner} for {title}")
    await services.generate.regenerate(owner, str(first.prompt_id))
    api_key, _ = await services.keys.create(owner, "seed")
    await services.spend.set_limits(f"owner:{owner}", Limits(rpm=100))
    await services.spend.set_limits(f"key:{api_key.id}", Limits(tpm=1000))
    return Seeded(job.id, task.id, artifact.id, run.id, str(first.prompt_id))


async def state(services: Services, owner: str) -> dict[str, Any]:
    """Every row and blob of ``owner``, counted at the source."""
    counts: dict[str, Any] = {}
    async with services.database.reading() as session:
        for table in OWNED:
            query = select(func.count()).select_from(table).where(table.owner_id == owner)
            counts[table.__tablename__] = (await session.execute(query)).scalar_one()
        batches = select(func.count()).select_from(RunBatch).join(Run).where(Run.owner_id == owner)
        counts["run_batches"] = (await session.execute(batches)).scalar_one()
        counters = (
            select(func.count()).select_from(ArtifactCounter).join(Job).where(Job.owner_id == owner)
        )
        counts["artifact_counters"] = (await session.execute(counters)).scalar_one()
        keys = select(literal("key:") + ApiKey.id).where(ApiKey.owner_id == owner)
        subject = (SpendLimit.subject == f"owner:{owner}") | SpendLimit.subject.in_(keys)
        limits = select(func.count()).select_from(SpendLimit).where(subject)
        counts["spend_limits"] = (await session.execute(limits)).scalar_one()
    counts["blobs"] = sorted([key async for key in services.blobs.list_keys(f"owners/{owner}/")])
    return counts


def empty(counts: dict[str, Any]) -> bool:
    return not any(counts.values())


async def test_deleting_a_job_removes_all_of_it_and_nothing_else(api: InProcess) -> None:
    client, services = api.client, api.services
    gone, kept = await seed(services, "alice"), await seed(services, "alice", "other")
    await seed(services, "bob")
    bob_before, alice_before = await state(services, "bob"), await state(services, "alice")

    assert (await client.delete(f"/v1/jobs/{gone.job}", headers=BOB)).status_code == 404
    assert await state(services, "alice") == alice_before
    response = await client.delete(f"/v1/jobs/{gone.job}", headers=ALICE)
    assert response.status_code == 204, response.text

    for path in (
        f"/v1/jobs/{gone.job}",
        f"/v1/tasks/{gone.task}",
        f"/v1/artifacts/{gone.artifact}",
        f"/v1/runs/{gone.run}",
        f"/v1/jobs/{gone.job}/events",
    ):
        assert (await client.get(path, headers=ALICE)).status_code == 404, path
    assert (await client.delete(f"/v1/jobs/{gone.job}", headers=ALICE)).status_code == 404
    after = await state(services, "alice")
    assert [key for key in after["blobs"] if gone.job in key or gone.run in key] == []
    # The other job keeps everything (its run shares the input blob of the same text).
    for table in ("jobs", "tasks", "artifacts", "runs"):
        assert after[table] == alice_before[table] - 1, table
    for table in ("prompts", "results", "api_keys"):
        assert after[table] == alice_before[table], table
    assert (await client.get(f"/v1/runs/{kept.run}/input", headers=ALICE)).status_code in (200, 302)
    assert (await client.get(f"/v1/jobs/{kept.job}", headers=ALICE)).status_code == 200
    assert await state(services, "bob") == bob_before

    [record] = (await client.get("/v1/deletions", headers=ALICE)).json()
    assert record["kind"] == "job" and record["target_id"] == gone.job
    assert record["actor"] == "alice" and record["finished_at"] is not None
    assert record["counts"]["tasks"] == 1 and record["counts"]["runs"] == 1
    assert "secret title" not in (await client.get("/v1/deletions", headers=ALICE)).text
    assert (await client.get("/v1/deletions", headers=BOB)).json() == []


async def test_deleting_a_job_cancels_its_running_task_first(api: InProcess) -> None:
    client, services = api.client, api.services
    job = (await client.post("/v1/jobs", json={"title": "busy"}, headers=ALICE)).json()
    ids = []
    for key in ("one", "two"):
        body = {"kind": "sleep", "payload": {"steps": 5000, "step_s": 0.01}}
        headers = {**ALICE, "Idempotency-Key": key}
        ids.append(
            (await client.post(f"/v1/jobs/{job['id']}/tasks", json=body, headers=headers)).json()[
                "id"
            ]
        )
    outcomes: list[str] = []
    mark_cancelled = services.tasks.mark_cancelled

    async def recording(lease: Any) -> None:
        try:
            await mark_cancelled(lease)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
            raise
        outcomes.append("cancelled")

    services.tasks.mark_cancelled = recording  # type: ignore[method-assign]
    worker = Worker(services, concurrency=1)
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while await status_of(api, ids[0]) != "running":  # noqa: ASYNC110 - another task's state
                await asyncio.sleep(0.02)
        response = await client.delete(f"/v1/jobs/{job['id']}", headers=ALICE)
        assert response.status_code == 204
        # The running task stopped on the cancel (its row still there to record it), and the
        # queued one was cancelled before a worker could claim it.
        assert outcomes == ["cancelled"]
        assert empty(await state(services, "alice"))
    finally:
        worker.stop()
        await running
    assert outcomes == ["cancelled"]


async def status_of(api: InProcess, task_id: str) -> str:
    status: str = (await api.client.get(f"/v1/tasks/{task_id}", headers=ALICE)).json()["status"]
    return status


async def test_deleting_a_prompt_removes_its_versions_and_exports(api: InProcess) -> None:
    client, services = api.client, api.services
    prompt = await services.generate.generate("alice", "a note to forget")
    await services.generate.regenerate("alice", str(prompt.prompt_id))
    other = await services.generate.generate("alice", "a note to keep")
    bobs = await services.generate.generate("bob", "a note to forget")
    job = await services.jobs.create("alice", {"title": "exports"}, AUDIT)
    versions = []
    for index, source in enumerate((other.result_id, prompt.result_id)):
        submission = Submission("noop", {}, f"export-{index}", 3, timedelta(hours=1))
        await services.tasks.submit(job, submission, AUDIT)
        [(_, lease)] = await services.tasks.claim("w", 30, 1)
        key = f"owners/alice/jobs/{job.id}/tasks/{lease.task_id}/1/x.md"
        info = await services.blobs.put(key, b"x", content_type="text/markdown")
        new = NewArtifact(
            "md", key, "x.md", "text/markdown", 1, info.sha256, source_result_id=source
        )
        versions += await services.tasks.complete(lease, {}, [new])
    results = [r.id for r in await services.prompts.list_results("alice", str(prompt.prompt_id))]

    path = f"/v1/prompts/{prompt.prompt_id}"
    assert (await client.delete(path, headers=BOB)).status_code == 404
    assert (await client.delete(path, headers=ALICE)).status_code == 204
    assert (await client.get(path, headers=ALICE)).status_code == 404
    assert (await client.delete(path, headers=ALICE)).status_code == 404
    for result_id in results:
        assert (await client.get(f"/v1/results/{result_id}", headers=ALICE)).status_code == 404
    # The export of the prompt went with its blob; the latest pointer fell back to version 1.
    listed = (await client.get(f"/v1/jobs/{job.id}/artifacts", headers=ALICE)).json()
    assert [(a["version"], a["id"]) for a in listed] == [(1, versions[0].id)]
    assert not await services.blobs.exists(versions[1].blob_key)
    assert (await services.artifacts.latest("alice", job.id, "md")).id == versions[0].id  # type: ignore[union-attr]
    assert (await client.get(f"/v1/prompts/{other.prompt_id}", headers=ALICE)).status_code == 200
    assert (await client.get(f"/v1/prompts/{bobs.prompt_id}", headers=BOB)).status_code == 200
    [record] = (await client.get("/v1/deletions", headers=ALICE)).json()
    assert record["kind"] == "prompt" and record["counts"] == {
        "artifacts": 1,
        "blobs": 1,
        "results": 2,
        "prompts": 1,
    }


async def test_the_admin_purges_an_owner_and_nothing_of_another(api: InProcess) -> None:
    client, services = api.client, api.services
    await seed(services, "alice")
    await seed(services, "bob")
    bob_before = await state(services, "bob")
    purge = "/v1/admin/owners/alice"
    assert (await client.delete(purge)).status_code == 401
    assert (await client.delete(purge, headers={"Authorization": "Bearer nope"})).status_code == 401
    settings = services.settings
    services.settings = settings.model_copy(update={"admin_token": None})
    assert (await client.delete(purge, headers=ADMIN)).status_code == 403
    services.settings = settings

    response = await client.delete(purge, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["counts"]["api_keys"] == 1
    assert empty(await state(services, "alice"))
    assert await state(services, "bob") == bob_before
    assert (await client.delete(purge, headers=ADMIN)).status_code == 404
    [record] = await DeletionStore(services.database).list_for_owner("alice")
    assert (record.kind, record.actor, record.target_id) == ("owner", "admin", "alice")
    assert record.finished_at is not None


async def test_a_deletion_cut_short_is_finished_by_the_sweep(
    api: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = api.services
    seeded = await seed(services, "alice")
    calls = 0
    real = DeletionStore.delete_job_rows

    async def crashing(self: DeletionStore, scope: Any, limit: int) -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("killed")
        return await real(self, scope, 1)

    monkeypatch.setattr(DeletionStore, "delete_job_rows", crashing)
    with pytest.raises(RuntimeError):
        await deletion.delete_job(services, "alice", seeded.job, AUDIT)
    monkeypatch.setattr(DeletionStore, "delete_job_rows", real)
    assert (await state(services, "alice"))["jobs"] == 1  # half done, and recorded as pending
    assert [d.target_id for d in await DeletionStore(services.database).pending()] == [seeded.job]

    report = await sweep(services)
    assert report.deletions_finished == 1
    left = await state(services, "alice")
    assert (left["jobs"], left["tasks"], left["runs"], left["artifacts"]) == (0, 0, 0, 0)
    assert [key for key in left["blobs"] if seeded.job in key or seeded.run in key] == []
    async with services.database.reading() as session:
        record = (await session.execute(select(Deletion))).scalar_one()
    assert record.finished_at is not None
