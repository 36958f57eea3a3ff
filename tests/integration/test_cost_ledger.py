"""The ledger at its source, in process on both databases: a fake upstream on loopback whose
usage carries cached prompt tokens, tokens per minute corrected to what a call used, and a
worker's generation metered to the API key that submitted its task (I16)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from genkeep.config import GeneratorProfile, Settings
from genkeep.db.keys import key_id_of
from genkeep.db.models import RateBucket, UsageEntry
from genkeep.db.spend import Limits
from genkeep.worker.runner import Worker
from tests.support.fake_openai import FakeOpenAI, ok
from tests.support.in_process import in_process

# One token a minute, in a bucket of 100,000: what refills while the test runs is far
# below one token, so the bucket's level says exactly what was taken.
TPM, CAPACITY = 1, 100_000
CACHED = 3


async def test_cached_tokens_tpm_corrected_and_a_workers_call_metered_to_its_key(
    settings: Settings, tmp_path: Path
) -> None:
    cached = ok(usage_details={"prompt_tokens_details": {"cached_tokens": CACHED}})
    # USD per million tokens: a token in costs 4 micro-dollars, a cached one 1, out 8; and a
    # provider limit of a token a minute (a bucket of one call: nothing refills meanwhile).
    prices = {"price_input": 4, "price_cached_input": 1, "price_output": 8, "tpm": TPM}
    with FakeOpenAI(cached, cached) as upstream:
        configured = settings.model_copy(
            update={
                "profiles": {
                    "default": GeneratorProfile(),
                    # Estimated at 1,024 tokens out: far more than the fake answers with.
                    "gpt": GeneratorProfile(backend="openai", model="gpt-x", **prices),
                    # Estimated at 1 token out: less than the fake answers with.
                    "tight": GeneratorProfile(
                        backend="openai", model="gpt-x", max_tokens=1, **prices
                    ),
                },
                "openai_base_url": upstream.base_url,
                "openai_api_key": SecretStr("sk-upstream"),
                "auth_required": True,
                "task_poll_s": 0.05,
                "blob_dir": tmp_path / "blobs",
                "rate_limit_burst_s": CAPACITY * 60 / TPM,
            }
        )
        async with in_process(configured) as app:
            _, token = await app.services.keys.create("alice", "ci")
            key = key_id_of(token)
            await app.services.spend.set_limits(f"key:{key}", Limits(tpm=TPM))
            headers = {"Authorization": f"Bearer {token}"}
            prompts = {"gpt": "one two three four five", "tight": "six seven eight nine ten"}
            for profile, prompt in prompts.items():
                answer = await app.client.post(
                    "/v1/generate", json={"prompt": prompt, "profile": profile}, headers=headers
                )
                assert answer.status_code == 200, answer.text

            # A task submitted with the key: its worker's generation is the key's too.
            job = (await app.client.post("/v1/jobs", json={}, headers=headers)).json()
            task = await app.client.post(
                f"/v1/jobs/{job['id']}/tasks",
                json={"kind": "generate", "payload": {"prompt": "by the worker"}},
                headers={**headers, "Idempotency-Key": "metered"},
            )
            assert task.status_code == 201, task.text
            worker = Worker(app.services)
            running = asyncio.create_task(worker.run())
            try:
                for _ in range(500):
                    found = await app.client.get(f"/v1/tasks/{task.json()['id']}", headers=headers)
                    if found.json()["status"] in ("completed", "failed"):
                        break
                    await asyncio.sleep(0.02)
            finally:
                worker.stop()
                await running
            assert found.json()["status"] == "completed", found.json()

            async with app.services.database.reading() as session:
                rows = (await session.execute(select(UsageEntry))).scalars().all()
                bucket = await session.get(RateBucket, f"rate:key:{key}")
                providers = {
                    name: await session.get(RateBucket, f"provider:{name}") for name in prompts
                }
            usage = await app.client.get("/v1/usage?group=key", headers=headers)
    assert upstream.calls == 2
    by_profile = {row.profile_name: row for row in rows}
    assert set(by_profile) == {"gpt", "tight", "default"}
    # Cached tokens as the upstream reported them, priced at the cached-input price.
    for profile in ("gpt", "tight"):
        row = by_profile[profile]
        assert row.key_id == key and row.cached_tokens == CACHED
        assert row.prompt_tokens == 5
        expected = (row.prompt_tokens - CACHED) * 4 + CACHED * 1 + row.completion_tokens * 8
        assert row.cost_micros == expected
    # The worker's call (the built-in generator) is the submitting key's.
    worker_row = by_profile["default"]
    assert worker_row.key_id == key and worker_row.owner_id == "alice"
    assert worker_row.cached_tokens == 0
    assert usage.json()[0]["cached_tokens"] == 2 * CACHED
    # Every call took its estimate, then gave back the rest or took the excess: the
    # bucket's level (at its last refill) is the minute's tokens less what the calls used.
    tight = by_profile["tight"]
    assert tight.prompt_tokens + tight.completion_tokens > len(prompts["tight"]) // 4 + 2
    used = sum(r.prompt_tokens + r.completion_tokens for r in rows)
    assert bucket is not None
    assert CAPACITY - used <= bucket.tokens < CAPACITY - used + 1
    # The provider's bucket too: each held one call's estimate, corrected to what it used.
    for name, prompt in prompts.items():
        estimate = len(prompt) // 4 + 1 + (1 if name == "tight" else 1024)
        row = by_profile[name]
        provider = providers[name]
        assert provider is not None
        assert provider.tokens == estimate - row.prompt_tokens - row.completion_tokens
