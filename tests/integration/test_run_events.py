"""A run's event stream (SSE): every change of the run, in order, once, from its change log.

httpx's ASGI transport hands over a response whole, so these read finished streams; the live
stream (cancel, resume, a worker in another process) is in tests/e2e/test_run_events.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from genkeep.config import Settings
from genkeep.db.models import RunChange
from genkeep.extract.manager import RunManager
from genkeep.services import Services
from tests.integration.test_runs_api import ONTOLOGY, TEXT
from tests.support.in_process import in_process

Api = tuple[httpx.AsyncClient, Services, RunManager]


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[Api]:
    configured = settings.model_copy(
        update={"blob_dir": tmp_path / "blobs", "public_url": "http://genkeep"}
    )
    async with in_process(configured) as app:
        yield app.client, app.services, app.runs


async def sse(response: httpx.Response) -> AsyncIterator[tuple[int, str, dict[str, Any]]]:
    """(id, event, data) of a text/event-stream response, as they arrive."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def logged(services: Services, run_id: str) -> list[tuple[int, str, int]]:
    async with services.database.reading() as session:
        query = (
            select(RunChange.seq, RunChange.status, RunChange.batches_done)
            .where(RunChange.run_id == run_id)
            .order_by(RunChange.seq)
        )
        return [(seq, status, done) for seq, status, done in (await session.execute(query)).all()]


async def start(client: httpx.AsyncClient, copies: int = 1) -> str:
    started = await client.post(
        "/v1/runs",
        json={
            "text": "\n\n".join([TEXT] * copies),
            "ontology": ONTOLOGY,
            "chunk_size": 300,
            "overlap": 0,
            "batch_size": 1,
        },
    )
    assert started.status_code == 202, started.text
    return str(started.json()["id"])


async def test_a_run_streams_every_change_until_it_completes(api: Api) -> None:
    client, services, manager = api
    run_id = await start(client)
    events = []
    async with asyncio.timeout(60), client.stream("GET", f"/v1/runs/{run_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [event async for event in sse(stream)]  # the stream ends by itself
    await manager.await_empty()
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert {name for _, name, _ in events} == {"run"}
    assert all(data["id"] == run_id and data["seq"] == seq for seq, _, data in events)
    done = [data["batches_done"] for _, _, data in events]
    assert done == sorted(done) and done[-1] == run["total_batches"] > 5
    # One event per batch committed: the progress moved through every value, none skipped.
    assert set(range(1, run["total_batches"] + 1)) <= set(done)
    last = events[-1][2]
    assert (last["status"], last["progress"], last["entities_found"]) == (
        "completed",
        1.0,
        run["entities_found"],
    )
    # The stream is the database's log, whole: nothing skipped, nothing added.
    assert [(seq, d["status"], d["batches_done"]) for seq, _, d in events] == await logged(
        services, run_id
    )
    # Reconnecting after the last event of a stopped run: 204, so an EventSource stops.
    after_end = await client.get(
        f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(events[-1][0])}
    )
    assert after_end.status_code == 204
    # Reconnecting in the middle replays exactly what came after.
    middle = events[len(events) // 2][0]
    async with client.stream(
        "GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(middle)}
    ) as stream:
        replayed = [seq async for seq, _, _ in sse(stream)]
    assert replayed == [seq for seq, _, _ in events if seq > middle]


async def test_another_owners_run_and_bad_ids(api: Api) -> None:
    client, services, _ = api
    run_id = await start(client)
    _, token = await services.keys.create("mallory")
    theirs = await client.get(
        f"/v1/runs/{run_id}/events", headers={"Authorization": f"Bearer {token}"}
    )
    assert theirs.status_code == 404  # exactly like a run that does not exist (I3)
    assert (await client.get("/v1/runs/no-such-run/events")).status_code == 404
    for bad_id in (b"x1", "\u00b2".encode("latin-1"), str(2**63).encode()):  # not a seq
        bad = await client.get(f"/v1/runs/{run_id}/events", headers={b"Last-Event-ID": bad_id})
        assert bad.status_code == 422 and bad.json()["code"] == "bad-input", bad_id
    assert (await client.get(f"/v1/runs/{run_id}/events?interval=0")).status_code == 422
