"""The seed's concurrency test, done right: real servers, real parallel HTTP clients, and the
generator calls counted where they land, at the fake OpenAI-compatible server: a call that
was killed or cancelled before it returned counts there too."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from genkeep.db.database import Database
from genkeep.db.models import Prompt, Result
from tests.support.fake_openai import FakeOpenAI, slow
from tests.support.server import Server, pid_of

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


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    """The generator: every call takes 0.3 s, so concurrent requests overlap."""
    with FakeOpenAI(default=slow(0.3)) as fake:
        yield fake


def openai_env(model: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "GENKEEP_PROFILES": json.dumps({"default": {"backend": "openai", "model": "gpt-fake"}}),
        "GENKEEP_OPENAI_BASE_URL": model.base_url,
        "GENKEEP_OPENAI_API_KEY": "sk-fake-generate",
        "GENKEEP_OPENAI_MAX_RETRIES": "0",
        **extra,
    }


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
    servers: Callable[..., Server], db_url: str, backend: str, model: FakeOpenAI
) -> None:
    workers = 2 if backend == "postgresql" else 1
    server = servers(workers=workers, **openai_env(model))
    responses = await post_many(server.url, [VARIANTS[i % len(VARIANTS)] for i in range(50)])
    assert [r.status_code for r in responses] == [200] * 50, responses[0].text
    bodies = [r.json() for r in responses]
    assert len({b["result_id"] for b in bodies}) == 1
    assert len({b["content"] for b in bodies}) == 1
    assert sum(not b["cached"] and not b["coalesced"] for b in bodies) == 1
    assert await counts(db_url) == (1, 1)
    assert model.calls == 1  # at the source
    assert metric(server, "genkeep_generator_calls_total") == 1
    assert metric(server, "genkeep_coalesced_waiters_total") >= 1


async def test_two_hundred_different_prompts_none_lost(
    servers: Callable[..., Server], db_url: str, backend: str, model: FakeOpenAI
) -> None:
    workers = 2 if backend == "postgresql" else 1
    server = servers(workers=workers, **openai_env(model))
    prompts = [f"Distinct prompt number {i}" for i in range(200)]
    responses = await post_many(server.url, prompts)
    assert [r.status_code for r in responses] == [200] * 200
    assert len({r.json()["prompt_id"] for r in responses}) == 200
    assert await counts(db_url) == (200, 200)
    asked = Counter(model.prompts())
    assert len(asked) == 200 and set(asked.values()) == {1}  # each prompt generated once
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
    servers: Callable[..., Server], db_url: str, model: FakeOpenAI
) -> None:
    lease_s = 1.0
    env = openai_env(model, GENKEEP_CLAIM_LEASE_S=str(lease_s), GENKEEP_CLAIM_POLL_S="0.05")
    doomed, survivor = servers(**env), servers(**env)
    model.hold_after(0)  # the leader's call never returns: it is killed while generating
    async with httpx.AsyncClient(timeout=60) as client:
        first = asyncio.create_task(
            client.post(doomed.url + "/v1/generate", json={"prompt": VARIANTS[0]})
        )
        holder = await claim_holder(db_url, time.monotonic() + 20)
        assert pid_of(holder) == doomed.worker_pids()[0]
        waiting = asyncio.create_task(
            client.post(survivor.url + "/v1/generate", json={"prompt": VARIANTS[1]})
        )
        # While the leader lives and renews its lease (two lease lengths), nobody else calls
        # the generator and the waiter gets no answer.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), 2 * lease_s)
        assert model.calls == 1
        os.kill(doomed.worker_pids()[0], signal.SIGKILL)
        killed_at = time.monotonic()
        model.release()
        with pytest.raises(httpx.HTTPError):
            await first
        response = await waiting
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["persisted"] and body["version"] == 1
    assert await counts(db_url) == (1, 1)
    # Counted at the generator: the killed call and the takeover's, and the takeover came only
    # once the dead leader's lease had run out (renewed every third of it, so >= 2/3 of it).
    chats = [r for r in model.requests if r.path.endswith("/chat/completions")]
    assert len(chats) == 2
    assert chats[1].at - killed_at >= lease_s / 2
    assert metric(survivor, "genkeep_lease_takeovers_total") == 1
    async with httpx.AsyncClient(timeout=30) as client:
        later = await client.post(survivor.url + "/v1/generate", json={"prompt": VARIANTS[2]})
    assert later.json()["cached"] and later.json()["result_id"] == body["result_id"]
    assert model.calls == 2
