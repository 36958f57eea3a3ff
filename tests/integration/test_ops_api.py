"""What the operations page reads: the queue depth on /metrics and the owner's duplicate check."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, insert, select, update

from genkeep.config import Settings
from genkeep.db.jobs import Audit
from genkeep.db.models import Prompt, Task
from genkeep.db.tasks import Submission
from genkeep.db.types import utcnow
from genkeep.services import Services
from tests.integration.test_duplicates import _drop_unique_key
from tests.support.in_process import in_process

AUDIT = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    # No worker runs here: the tasks stay in the statuses the test gives them.
    async with in_process(settings) as app:
        yield app.client, app.services


def gauge(page: str, name: str) -> dict[str, float]:
    """The samples of ``name{status="..."}`` on a Prometheus text page, by status."""
    pattern = re.compile(rf'^{name}\{{status="(\w+)"\}} (\S+)$', re.MULTILINE)
    return {status: float(value) for status, value in pattern.findall(page)}


async def counted_in_database(services: Services) -> dict[str, int]:
    """The count, made here without the repository: rows in ``tasks`` by status."""
    async with services.database.reading() as session:
        rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
        return {status: count for status, count in rows.all()}


async def test_metrics_show_the_task_queue_depth_counted_in_the_database(
    app_client: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app_client
    page = (await client.get("/metrics")).text
    # The queue's depth: unfinished tasks only, read from the partial claim index (the
    # finished ones are history, which a scrape must not count).
    assert gauge(page, "genkeep_tasks") == dict.fromkeys(("queued", "running"), 0)
    assert "# TYPE genkeep_tasks gauge" in page
    wanted = {"queued": 3, "running": 2, "completed": 4, "failed": 1, "cancelled": 0}
    statuses = [status for status, n in wanted.items() for _ in range(n)]
    # Every owner's tasks make the queue: alice has every other task, bob the rest.
    for owner, share in (("alice", statuses[::2]), ("bob", statuses[1::2])):
        job = await services.jobs.create(owner, {"title": "depth"}, AUDIT)
        for index, status in enumerate(share):
            task, _ = await services.tasks.submit(
                job,
                Submission("export", {"formats": ["md"]}, f"{owner}-{index}", 3, timedelta(60)),
                AUDIT,
            )
            async with services.database.transaction() as session:
                await session.execute(update(Task).where(Task.id == task.id).values(status=status))
    in_database = await counted_in_database(services)
    assert in_database == {s: n for s, n in wanted.items() if n}
    page = (await client.get("/metrics")).text
    unfinished = {"queued": 3.0, "running": 2.0}
    assert gauge(page, "genkeep_tasks") == unfinished
    # A task that moves is counted where it is at the next scrape: it is read, not kept.
    async with services.database.transaction() as session:
        await session.execute(
            update(Task).where(Task.status == "queued").values(status="cancelled")
        )
    moved = gauge((await client.get("/metrics")).text, "genkeep_tasks")
    assert moved == {**unfinished, "queued": 0}
    assert await counted_in_database(services) == {
        "running": 2,
        "completed": 4,
        "failed": 1,
        "cancelled": 3,
    }


def prompt_rows(owner: str, hashed: str, ids: list[str]) -> list[dict[str, object]]:
    now = utcnow()
    return [
        {
            "id": prompt_id,
            "owner_id": owner,
            "profile_name": "default",
            "profile_key": "k",
            "normalized_hash": hashed,
            "normalized_text": "t",
            "prompt_text": "T",
            "status": "ready",
            "attempts": 1,
            "latest_version": 0,
            "created_at": now + timedelta(seconds=i),
            "updated_at": now,
        }
        for i, prompt_id in enumerate(ids)
    ]


async def test_duplicates_are_listed_to_their_owner_only(
    app_client: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app_client
    tokens = {owner: (await services.keys.create(owner))[1] for owner in ("alice", "bob")}

    async def duplicates(owner: str) -> httpx.Response:
        return await client.get(
            "/v1/prompts/duplicates", headers={"Authorization": f"Bearer {tokens[owner]}"}
        )

    assert (await client.post("/v1/generate", json={"prompt": "Unique"})).status_code == 200
    assert (await duplicates("alice")).json() == []
    # Rows written around the unique constraint (I1), as data imported without it would be.
    async with services.database.engine.begin() as connection:
        await connection.run_sync(_drop_unique_key)
    async with services.database.transaction() as session:
        await session.execute(insert(Prompt), prompt_rows("alice", "h", ["a1", "a2", "a3"]))
        await session.execute(insert(Prompt), prompt_rows("alice", "single", ["a4"]))
        await session.execute(insert(Prompt), prompt_rows("bob", "other", ["b1"]))

    alice = await duplicates("alice")
    assert alice.status_code == 200
    assert alice.json() == [
        {"profile_key": "k", "normalized_hash": "h", "count": 3, "prompt_ids": ["a1", "a2", "a3"]}
    ]
    bob = await duplicates("bob")
    assert bob.status_code == 200 and bob.json() == []  # alice's rows are not bob's (I3)
    async with services.database.transaction() as session:
        await session.execute(insert(Prompt), prompt_rows("bob", "h", ["b2", "b3"]))
    assert [d["prompt_ids"] for d in (await duplicates("bob")).json()] == [["b2", "b3"]]
    assert [d["prompt_ids"] for d in (await duplicates("alice")).json()] == [["a1", "a2", "a3"]]
    # The operator's check (genkeep ops duplicates) still sees every owner's.
    found = await services.prompts.find_duplicates()
    assert [(d.owner_id, d.count) for d in found] == [("alice", 3), ("bob", 2)]
    nobody = await client.get("/v1/prompts/duplicates", headers={"Authorization": "Bearer gk_x"})
    assert nobody.status_code == 401
