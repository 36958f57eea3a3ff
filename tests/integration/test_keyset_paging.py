"""Lists page by cursor (keyset): every row once, newest first, ties broken by id (issue 20)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from genkeep.config import Settings
from genkeep.db.models import Prompt
from genkeep.db.types import utcnow
from tests.support.edge import EdgeApi, edge_api


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[EdgeApi]:
    async with edge_api(settings, tmp_path) as opened:
        yield opened


async def _prompts(api: EdgeApi, owner: str, stamps: list[int]) -> list[tuple[object, str]]:
    """Prompts created at now + each stamp (seconds): equal stamps tie on created_at."""
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "owner_id": owner,
            "profile_name": "default",
            "profile_key": "k",
            "normalized_hash": uuid.uuid4().hex,
            "normalized_text": "t",
            "prompt_text": f"T{i}",
            "status": "ready",
            "attempts": 1,
            "latest_version": 0,
            "created_at": now + timedelta(seconds=stamp),
            "updated_at": now,
        }
        for i, stamp in enumerate(stamps)
    ]
    async with api.services.database.transaction() as session:
        await session.execute(insert(Prompt), rows)
    return [(row["created_at"], str(row["id"])) for row in rows]


async def test_prompts_page_by_cursor_through_ties_and_past_other_owners(api: EdgeApi) -> None:
    # 9 prompts, 4 of them at one instant; bob's rows sit between them in time.
    mine = await _prompts(api, "alice", [0, 1, 1, 1, 1, 2, 3, 4, 5])
    await _prompts(api, "bob", [1, 2, 3])
    expected = [row_id for _, row_id in sorted(mine, reverse=True)]
    seen: list[str] = []
    url: str | None = "/v1/prompts?limit=2"
    pages = 0
    while url is not None:
        response = await api.client.get(url, headers=api.alice)
        assert response.status_code == 200, response.text
        seen += [p["id"] for p in response.json()]
        link = response.headers.get("link")
        url = link.split(">")[0].removeprefix("<") if link else None
        if url is not None:
            assert response.headers["x-next-cursor"] in url and 'rel="next"' in link
        pages += 1
    assert seen == expected
    assert pages == 5
    # Offset still pages (each page then costs the rows it skips).
    skipped = await api.client.get("/v1/prompts?limit=2&offset=2", headers=api.alice)
    assert [p["id"] for p in skipped.json()] == expected[2:4]
    for bad in ("%%%", "bm9uc2Vuc2U="):
        refused = await api.client.get(f"/v1/prompts?cursor={bad}", headers=api.alice)
        assert refused.status_code == 422


async def test_tasks_runs_and_jobs_page_by_cursor(api: EdgeApi) -> None:
    jobs = []
    for i in range(3):
        created = await api.client.post("/v1/jobs", json={"title": f"j{i}"}, headers=api.alice)
        assert created.status_code == 201
        jobs.append(created.json()["id"])
    submitted = []
    for i, job_id in enumerate([jobs[0], jobs[1], jobs[0]]):
        task = await api.client.post(
            f"/v1/jobs/{job_id}/tasks",
            json={"kind": "noop", "payload": {}},
            headers={**api.alice, "Idempotency-Key": f"k{i}"},
        )
        assert task.status_code == 201, task.text
        submitted.append(task.json()["id"])
    bobs = await api.client.get("/v1/tasks", headers=api.bob)
    assert bobs.json() == []
    page = await api.client.get("/v1/tasks?limit=2", headers=api.alice)
    rest = await api.client.get(page.headers["link"].split(">")[0][1:], headers=api.alice)
    assert "link" not in rest.headers
    listed = page.json() + rest.json()
    # Newest first, ties (one clock tick) broken by id: every task once.
    newest_first = sorted(listed, key=lambda t: (t["created_at"], t["id"]), reverse=True)
    assert [t["id"] for t in listed] == [t["id"] for t in newest_first]
    assert sorted(t["id"] for t in listed) == sorted(submitted)
    of_job = await api.client.get(f"/v1/tasks?job_id={jobs[0]}", headers=api.alice)
    assert sorted(t["id"] for t in of_job.json()) == sorted([submitted[0], submitted[2]])
    first = await api.client.get("/v1/jobs?limit=2", headers=api.alice)
    rest = await api.client.get(
        f"/v1/jobs?limit=2&cursor={first.json()['next_cursor']}", headers=api.alice
    )
    titles = [j["title"] for j in first.json()["items"] + rest.json()["items"]]
    assert titles == ["j2", "j1", "j0"]
    runs = await api.client.get("/v1/runs?limit=1", headers=api.alice)
    assert runs.status_code == 200 and runs.json() == [] and "link" not in runs.headers
