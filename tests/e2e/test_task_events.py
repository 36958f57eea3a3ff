"""The task event stream (SSE) through a real server: every change, in order, once, resumable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from genkeep.db.database import Database
from genkeep.db.models import TaskChange
from tests.support.server import Server

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Sse:
    id: int
    event: str
    data: dict[str, Any]

    @property
    def state(self) -> tuple[str, str | None, float]:
        return self.data["status"], self.data["stage"], self.data["progress"]


async def events(response: httpx.Response) -> AsyncIterator[Sse]:
    """The events of a text/event-stream response, as they arrive."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Sse(int(fields["id"]), fields["event"], json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def expected(steps: int) -> list[tuple[str, str | None, float]]:
    """Every state a ``stages`` task passes through, as the handler writes them."""
    return [
        ("queued", "queued", 0.0),
        ("running", "starting", 0.0),
        *[
            ("running", f"step {s}/{steps}", 0.9 * progress / steps)
            for s in range(1, steps + 1)
            for progress in (s - 0.5, s)  # the repeated update is no change: no event
        ],
        ("completed", "done", 1.0),
    ]


async def submit(client: httpx.AsyncClient, payload: dict[str, Any]) -> str:
    job = (await client.post("/v1/jobs", json={"title": "sse"})).json()["id"]
    task = await client.post(
        f"/v1/jobs/{job}/tasks",
        json={"kind": "stages", "payload": payload},
        headers={"Idempotency-Key": json.dumps(payload)},
    )
    assert task.status_code == 201, task.text
    return str(task.json()["id"])


async def logged(db_url: str, task_id: str) -> list[tuple[int, str, str | None, float]]:
    """The task's change log as the database holds it."""
    database = Database(db_url)
    try:
        async with database.reading() as session:
            query = (
                select(TaskChange.seq, TaskChange.status, TaskChange.stage, TaskChange.progress)
                .where(TaskChange.task_id == task_id)
                .order_by(TaskChange.seq)
            )
            return [tuple(row) for row in (await session.execute(query)).all()]  # type: ignore[misc]
    finally:
        await database.dispose()


async def test_a_task_faster_than_any_poll_streams_every_change_once_in_order(
    servers: Callable[..., Server], db_url: str, backend: str
) -> None:
    server = servers()
    steps = 30
    # The longest poll interval allowed: on PostgreSQL only NOTIFY can wake the stream before
    # the task is long done; on SQLite, whose stream polls, one poll sees many changes at once.
    interval = 10 if backend == "postgresql" else 2
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        task_id = await submit(client, {"steps": steps})
        received: list[Sse] = []
        async with asyncio.timeout(8 if backend == "postgresql" else 60):
            async with client.stream(
                "GET", f"/v1/tasks/{task_id}/events?interval={interval}"
            ) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                received = [event async for event in events(stream)]
    assert [e.state for e in received] == expected(steps)
    assert {e.event for e in received} == {"task"}
    assert all(e.data["id"] == task_id and e.data["seq"] == e.id for e in received)
    ids = [e.id for e in received]
    assert ids == sorted(set(ids))
    # The stream is the database's log, whole: nothing skipped, nothing added.
    assert [(e.id, *e.state) for e in received] == await logged(db_url, task_id)


async def read_until(
    client: httpx.AsyncClient, task_id: str, stop: Callable[[Sse], bool], last: int | None
) -> list[Sse]:
    """Events from a (re)connection after ``last``, until one matches ``stop`` or it ends."""
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    got: list[Sse] = []
    async with client.stream(
        "GET", f"/v1/tasks/{task_id}/events?interval=0.05", headers=headers
    ) as stream:
        assert stream.status_code == 200
        async for event in events(stream):
            got.append(event)
            if stop(event):
                break
    return got


async def test_a_client_that_reconnects_with_last_event_id_misses_nothing(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    server = servers()
    steps, gate = 20, tmp_path / "gate"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        task_id = await submit(client, {"steps": steps, "gate_at": 11, "gate": str(gate)})
        first = await read_until(client, task_id, lambda e: e.data["stage"] == "step 5/20", None)
        # Disconnected, the task goes on to step 10 and waits at the gate.
        for _ in range(500):
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            if task["stage"] == "step 10/20" and task["progress"] == 0.9 * 10 / 20:
                break
            await asyncio.sleep(0.02)
        assert (task["stage"], task["progress"]) == ("step 10/20", 0.9 * 10 / 20)

        def open_gate_at_step_10(event: Sse) -> bool:
            if event.state == ("running", "step 10/20", 0.9 * 10 / 20):  # caught up from the log
                gate.touch()
            return False

        async with asyncio.timeout(60):  # the stream ends by itself once the task finishes
            second = await read_until(client, task_id, open_gate_at_step_10, first[-1].id)
        async with asyncio.timeout(30):  # a stream left open would wait for nothing, forever
            after_end = await client.get(
                f"/v1/tasks/{task_id}/events", headers={"Last-Event-ID": str(second[-1].id)}
            )
        bad = await client.get(f"/v1/tasks/{task_id}/events", headers={"Last-Event-ID": "x1"})
    assert [e.state for e in first + second] == expected(steps)
    assert [e.id for e in first + second] == sorted({e.id for e in first + second})
    assert second[0].id > first[-1].id
    # Reconnecting after the last event of a finished task: 204, so EventSource stops.
    assert after_end.status_code == 204
    assert bad.status_code == 422 and bad.json()["code"] == "bad-input"
