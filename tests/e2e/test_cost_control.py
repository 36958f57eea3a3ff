"""Cost control through a real ``genkeep serve`` and the official ``openai`` SDK with its
retries on: an upstream that rate limits, times out or fails; limits, budgets and the ledger.
Answers clients understand, counted at the fake upstream and in the database (I16)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from sqlalchemy import select

from genkeep.db.database import Database
from genkeep.db.keys import ApiKeyStore, key_id_of
from genkeep.db.models import UsageEntry
from genkeep.db.spend import Limits, SpendStore, period_of
from tests.e2e.test_chat_completions import MESSAGES, UPSTREAM_MODEL, api_key
from tests.support.fake_openai import FakeOpenAI, slow, status
from tests.support.server import Server

pytestmark = pytest.mark.e2e

# USD per million tokens: a token in costs 1 micro-dollar, a token out 2.
PROFILE = {"backend": "openai", "model": UPSTREAM_MODEL, "price_input": 1, "price_output": 2}


async def keys(db_url: str, **limits: Limits) -> dict[str, str]:
    """A key of alice per name, with its limits."""
    database = Database(db_url)
    try:
        tokens = {}
        for name, limit in limits.items():
            key, tokens[name] = await ApiKeyStore(database).create("alice", name)
            if limit.any:
                await SpendStore(database).set_limits(f"key:{key.id}", limit)
        return tokens
    finally:
        await database.dispose()


async def test_upstream_errors_limits_budgets_and_the_ledger(
    servers: Callable[..., Server], db_url: str
) -> None:
    with FakeOpenAI(*[status(429, retry_after="1", retry_after_ms=40)] * 6) as upstream:
        server = servers(
            GENKEEP_PROFILES=json.dumps({"default": {}, "gpt-test": {**PROFILE, "max_tokens": 40}}),
            GENKEEP_OPENAI_BASE_URL=upstream.base_url,
            GENKEEP_OPENAI_API_KEY="sk-upstream",
            GENKEEP_OPENAI_TIMEOUT_S="0.5",
            # Limits are set while it runs: read them on every request, not every 2 s.
            GENKEEP_LIMITS_CACHE_S="0",
            # genkeep's own retries at their default (3): the window's 3 attempts bound them.
            GENKEEP_SERVE_WORKER="false",
        )
        # Another owner than alice's: its prompts (and their attempt windows) are its own.
        await upstream_errors(server, upstream, await api_key(db_url, "carol"))
        calls = upstream.calls
        await limits_and_ledger(server, upstream, db_url, calls)


async def upstream_errors(server: Server, upstream: FakeOpenAI, token: str) -> None:
    """The provider refuses (6 planned 429s: Retry-After 1 s, or 40 ms to a client that reads
    the ms), then times out, then fails."""
    # The SDK's defaults: 2 retries, honouring retry-after-ms.
    sdk = AsyncOpenAI(base_url=server.url + "/v1", api_key=token, timeout=30)
    quick = AsyncOpenAI(base_url=server.url + "/v1", api_key=token, max_retries=0, timeout=30)
    with pytest.raises(openai.RateLimitError) as raised:
        await sdk.chat.completions.create(model="gpt-test", messages=MESSAGES)
    error = raised.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.response.headers["retry-after-ms"] == "40"
    assert isinstance(error.body, dict) and error.body["type"] == "rate_limit_error"
    assert error.body["code"] == "upstream_rate_limited"
    # 1 client call + 2 SDK retries, genkeep's 3 retries each: 12 without the window.
    assert upstream.calls == 3
    sent = {json.dumps(r.body["messages"]) for r in upstream.requests}
    assert sent == {json.dumps(MESSAGES)}

    # /v1/generate answers problem+json with the same headers, within the same window.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.post(
            "/v1/generate",
            json={"prompt": "Summarize the news", "profile": "gpt-test"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 429, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["code"] == "upstream-rate-limited"
        assert upstream.calls == 6
        again = await http.post(
            "/v1/generate",
            json={"prompt": "Summarize the news", "profile": "gpt-test"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert again.status_code == 429
        assert upstream.calls == 6  # the window's attempts are spent: no new call

        # A timeout answers 504 and a 5xx 502, after the window's attempts as well.
        upstream.plan(*[slow(2.0)] * 3, *[status(503, retry_after_ms=10)] * 3)
        with pytest.raises(openai.APIStatusError) as timed_out:
            await quick.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "slow"}]
            )
        assert timed_out.value.status_code == 504
        assert isinstance(timed_out.value.body, dict)
        assert timed_out.value.body["code"] == "upstream_timeout"
        assert upstream.calls == 9
        with pytest.raises(openai.InternalServerError) as failed:
            await quick.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "failing"}]
            )
        assert failed.value.status_code == 502
        assert upstream.calls == 12


async def limits_and_ledger(server: Server, upstream: FakeOpenAI, db_url: str, before: int) -> None:
    """Budget, rate limit and a streamed call of three keys of alice; the ledger after."""
    tokens = await keys(
        db_url,
        budget=Limits(budget_micros=130, budget_period="day"),
        rpm=Limits(rpm=2),
        free=Limits(),
    )

    def sdk(name: str) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=server.url + "/v1", api_key=tokens[name], max_retries=0)

    # A budget of 130 micro-dollars: the first call reserves its most (max_tokens 40) and
    # spends what it cost; the next one's most no longer fits.
    first = await sdk("budget").chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES
    )
    assert first.status_code == 200
    with pytest.raises(openai.RateLimitError) as spent:
        await sdk("budget").chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "something new " * 20}]
        )
    assert spent.value.code == "budget_exceeded"
    assert isinstance(spent.value.body, dict) and spent.value.body["type"] == "budget_exceeded"
    assert int(spent.value.response.headers["retry-after"]) >= 1
    assert upstream.calls == before + 1
    # A hit spends nothing: answered although the budget is spent.
    hit = await sdk("budget").chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES
    )
    assert hit.headers["x-genkeep-cached"] == "true"
    assert upstream.calls == before + 1

    # Requests per minute: 2, one at a time; the answer says what is left.
    ok = await sdk("rpm").chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES
    )
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as limited:
        await sdk("rpm").chat.completions.create(model="gpt-test", messages=MESSAGES)
    headers = limited.value.response.headers
    assert limited.value.code == "rate_limited"
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 30
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post(
            "/v1/generate",
            json={"prompt": "hello", "profile": "gpt-test"},
            headers={"authorization": f"Bearer {tokens['rpm']}"},
        )
        assert answer.status_code == 429
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["x-ratelimit-limit-requests"] == "2"
        # Embeddings count toward the same requests per minute.
        embedded = await http.post(
            "/v1/embeddings",
            json={"model": "gpt-test", "input": "hello"},
            headers={"authorization": f"Bearer {tokens['rpm']}"},
        )
        assert embedded.status_code == 429, embedded.text
        assert embedded.headers["x-ratelimit-limit-requests"] == "2"

        # A streamed call is metered like any other.
        async with sdk("free").chat.completions.with_streaming_response.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
        ) as raw:
            async for _ in await raw.parse():
                pass
        assert upstream.calls == before + 2

        usage = await http.get(
            "/v1/usage",
            params={"group": "key"},
            headers={"authorization": f"Bearer {tokens['free']}"},
        )
        assert usage.status_code == 200
        rows = {row["key"]: row for row in usage.json()}
    budget_key, free_key = key_id_of(tokens["budget"]), key_id_of(tokens["free"])
    rpm_key = key_id_of(tokens["rpm"])
    # Counted in the database: what the ledger says is what the counters spent.
    words = sum(len(str(m["content"]).split()) for m in MESSAGES)
    assert rows[budget_key]["calls"] == 1 and rows[budget_key]["hits"] == 1
    assert rows[budget_key]["prompt_tokens"] == 2 * words  # the call and the hit's saving
    cost = rows[budget_key]["cost_usd"]
    assert cost > 0 and rows[budget_key]["saved_usd"] == pytest.approx(cost)
    assert rows[rpm_key]["calls"] == 0 and rows[rpm_key]["hits"] == 1
    assert rows[free_key]["calls"] == 1 and rows[free_key]["completion_tokens"] > 0
    database = Database(db_url)
    try:
        spent_micros, reserved = await SpendStore(database).counter(
            f"key:{budget_key}", period_of("day")
        )
        async with database.reading() as session:
            streamed = (
                await session.execute(
                    select(UsageEntry.streamed).where(
                        UsageEntry.key_id == free_key, UsageEntry.hit.is_(False)
                    )
                )
            ).scalars()
            assert list(streamed) == [True]
    finally:
        await database.dispose()
    assert (spent_micros, reserved) == (round(cost * 1e6), 0)
