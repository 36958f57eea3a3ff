"""The seed's concurrency test, done right: real servers, real parallel HTTP clients."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from genkeep.db.database import Database
from genkeep.db.models import Prompt, Result
from tests.support.server import Server

pytestmark = pytest.mark.e2e

VARIANTS = [
    "Explain durable generation to a new engineer",
    "explain DURABLE generation to a new engineer",
    "  Explain durable   generation\tto a new engineer\n",
    "EXPLAIN DURABLE GENERATION TO A NEW ENGINEER",
]


def metric(server: Server, name: str, **labels: str) -> float:
    """A counter's value summed over every server process (and matching labels)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def post_many(url: str, prompts: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(prompts))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(
            *[client.post("/v1/generate", json={"prompt": p}) for p in prompts]
        )


async def counts(db_url: str) -> tuple[int, int]:
    database = Database(db_url)
    try:
        async with database.reading() as session:
            prompts = (await session.execute(select(func.count()).select_from(Prompt))).scalar_one()
            results = (await session.execute(select(func.count()).select_from(Result))).scalar_one()
    finally:
        await database.dispose()
    return int(prompts), int(results)


async def test_fifty_identical_requests_make_one_generation(
    servers: Callable[..., Server], db_url: str, backend: str
) -> None:
    workers = 2 if backend == "postgresql" else 1
    server = servers(workers=workers, GENKEEP_BUILTIN_LATENCY_MS="300")
    responses = await post_many(server.url, [VARIANTS[i % len(VARIANTS)] for i in range(50)])
    assert [r.status_code for r in responses] == [200] * 50, responses[0].text
    bodies = [r.json() for r in responses]
    assert len({b["result_id"] for b in bodies}) == 1
    assert len({b["content"] for b in bodies}) == 1
    assert sum(not b["cached"] and not b["coalesced"] for b in bodies) == 1
    assert await counts(db_url) == (1, 1)
    assert metric(server, "genkeep_generator_calls_total") == 1
    assert metric(server, "genkeep_coalesced_waiters_total") >= 1


async def test_two_hundred_different_prompts_none_lost(
    servers: Callable[..., Server], db_url: str, backend: str
) -> None:
    workers = 2 if backend == "postgresql" else 1
    server = servers(workers=workers, GENKEEP_BUILTIN_LATENCY_MS="300")
    prompts = [f"Distinct prompt number {i}" for i in range(200)]
    responses = await post_many(server.url, prompts)
    assert [r.status_code for r in responses] == [200] * 200
    assert len({r.json()["prompt_id"] for r in responses}) == 200
    assert await counts(db_url) == (200, 200)
    assert metric(server, "genkeep_generator_calls_total") == 200


async def claim_holder(db_url: str, deadline: float) -> str:
    database = Database(db_url)
    try:
        while time.monotonic() < deadline:
            async with database.reading() as session:
                holder = (await session.execute(select(Prompt.claim_holder))).scalar()
            if holder:
                return holder
            await asyncio.sleep(0.05)
    finally:
        await database.dispose()
    raise AssertionError("no claim appeared")


async def test_killed_claim_holder_is_taken_over_after_its_lease(
    servers: Callable[..., Server], db_url: str
) -> None:
    env = {
        "GENKEEP_BUILTIN_LATENCY_MS": "2000",
        "GENKEEP_CLAIM_LEASE_S": "1",
        "GENKEEP_CLAIM_POLL_S": "0.05",
    }
    doomed, survivor = servers(**env), servers(**env)
    async with httpx.AsyncClient(timeout=60) as client:
        first = asyncio.create_task(
            client.post(doomed.url + "/v1/generate", json={"prompt": VARIANTS[0]})
        )
        holder = await claim_holder(db_url, time.monotonic() + 20)
        assert holder.split(":")[1] == str(doomed.worker_pids()[0])
        waiting = asyncio.create_task(
            client.post(survivor.url + "/v1/generate", json={"prompt": VARIANTS[1]})
        )
        await asyncio.sleep(0.3)
        os.kill(doomed.worker_pids()[0], signal.SIGKILL)
        with pytest.raises(httpx.HTTPError):
            await first
        response = await waiting
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["persisted"] and body["version"] == 1
    assert await counts(db_url) == (1, 1)
    assert metric(survivor, "genkeep_lease_takeovers_total") == 1
    async with httpx.AsyncClient(timeout=30) as client:
        later = await client.post(survivor.url + "/v1/generate", json={"prompt": VARIANTS[2]})
    assert later.json()["cached"] and later.json()["result_id"] == body["result_id"]
