"""A run's event stream through real processes: live while it runs, across cancel and resume,
and for a run that a separate ``genkeep worker`` process executes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_run_events import sse
from tests.support.server import Server, WorkerProcess

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
TEXT = (SAMPLES / "text.md").read_text()
ONTOLOGY = (SAMPLES / "ontology.ttl").read_text()
PLAN = {"ontology": ONTOLOGY, "chunk_size": 300, "overlap": 0, "batch_size": 1}


async def read(
    client: httpx.AsyncClient,
    run_id: str,
    *,
    last: int | None = None,
    interval: float = 0.25,
    on_event: Callable[[dict[str, Any]], Any] | None = None,
) -> list[dict[str, Any]]:
    """The events of one connection until the stream ends, each with its ``seq``."""
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    got: list[dict[str, Any]] = []
    async with client.stream(
        "GET", f"/v1/runs/{run_id}/events?interval={interval}", headers=headers
    ) as stream:
        assert stream.status_code == 200, await stream.aread()
        async for seq, name, data in sse(stream):
            assert name == "run" and data["seq"] == seq
            got.append(data)
            if on_event is not None:
                await on_event(data)
    return got


async def test_a_cancelled_run_stream_ends_and_a_resumed_one_continues(
    servers: Callable[..., Server],
) -> None:
    server = servers()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        started = await client.post("/v1/runs", json={"text": "\n\n".join([TEXT] * 40), **PLAN})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        cancelled: list[int] = []

        async def cancel_at_batch_3(event: dict[str, Any]) -> None:
            if event["batches_done"] >= 3 and not cancelled:
                cancelled.append(event["batches_done"])
                answer = await client.post(f"/v1/runs/{run_id}/cancel")
                assert answer.status_code == 200, answer.text

        async with asyncio.timeout(60):
            first = await read(client, run_id, on_event=cancel_at_batch_3)
        # Live: the stream saw batch 3 while the run was still going, so the cancel landed.
        assert cancelled and first[-1]["status"] == "cancelled"
        assert any(e["cancel_requested"] for e in first)  # the request is a change too
        assert 3 <= first[-1]["batches_done"] < first[-1]["total_batches"]
        ended = await client.get(
            f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(first[-1]["seq"])}
        )
        assert ended.status_code == 204

        assert (await client.post(f"/v1/runs/{run_id}/resume")).status_code == 202
        async with asyncio.timeout(120):
            second = await read(client, run_id, last=first[-1]["seq"])
    assert second[0]["seq"] > first[-1]["seq"]
    assert second[0]["status"] == "running" and second[-1]["status"] == "completed"
    done = [e["batches_done"] for e in first + second]
    assert done == sorted(done) and done[-1] == second[-1]["total_batches"]


async def test_a_run_executed_by_a_worker_process_streams_to_the_server(
    servers: Callable[..., Server],
    workers: Callable[..., WorkerProcess],
    backend: str,
) -> None:
    # The server runs no worker: a `genkeep worker` process executes the extract task's run.
    server = servers(GENKEEP_SERVE_WORKER="false")
    workers(concurrency=1)
    # On PostgreSQL, only the worker's NOTIFY can wake a stream that polls every 10 s in time
    # to see each batch; on SQLite the stream polls the log, which still holds every change.
    interval = 10 if backend == "postgresql" else 0.25
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        job = (await client.post("/v1/jobs", json={"title": "extract"})).json()["id"]
        task = await client.post(
            f"/v1/jobs/{job}/tasks",
            json={"kind": "extract", "payload": {"text": "\n\n".join([TEXT] * 6), **PLAN}},
            headers={"Idempotency-Key": "extract-1"},
        )
        assert task.status_code == 201, task.text
        run_id = task.json()["id"]  # the run's id is the task's
        for _ in range(600):  # the worker creates the run when it claims the task
            if (await client.get(f"/v1/runs/{run_id}")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        async with asyncio.timeout(8 if backend == "postgresql" else 120):
            events = await read(client, run_id, interval=interval)
        run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert events[-1]["status"] == "completed" and run["status"] == "completed"
    done = [e["batches_done"] for e in events]
    assert done == sorted(done)
    # Every batch the worker committed reached the server's stream, one event each.
    assert set(range(1, run["total_batches"] + 1)) <= set(done)
    assert run["total_batches"] > 5
