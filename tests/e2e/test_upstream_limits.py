"""An upstream that rate limits, against a real ``genkeep serve`` and the official ``openai``
SDK with its retries on: the SDK's own error, the provider's Retry-After, and a bounded
number of upstream calls per prompt, counted at the fake upstream."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from tests.e2e.test_chat_completions import MESSAGES, UPSTREAM_MODEL, api_key
from tests.support.fake_openai import FakeOpenAI, slow, status
from tests.support.server import Server

pytestmark = pytest.mark.e2e


async def test_an_upstream_429_is_a_429_and_client_retries_join_the_claim(
    servers: Callable[..., Server], db_url: str
) -> None:
    # The provider always refuses: Retry-After 1 s, or 40 ms to a client that reads the ms.
    with FakeOpenAI(default=status(429, retry_after="1", retry_after_ms=40)) as upstream:
        server = servers(
            GENKEEP_PROFILES=json.dumps(
                {"default": {}, "gpt-test": {"backend": "openai", "model": UPSTREAM_MODEL}}
            ),
            GENKEEP_OPENAI_BASE_URL=upstream.base_url,
            GENKEEP_OPENAI_API_KEY="sk-upstream",
            GENKEEP_SERVE_WORKER="false",
            GENKEEP_OPENAI_TIMEOUT_S="0.5",
            # genkeep's own retries at their default (3): the window's 3 attempts bound them.
        )
        token = await api_key(db_url, "alice")
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
