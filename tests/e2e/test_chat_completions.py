"""The official ``openai`` SDK, unchanged, against a real ``genkeep serve`` (I1, I3, I14).

The upstream is the fake OpenAI-compatible server on loopback; its request log is where
generator calls are counted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from genkeep.db.database import Database
from genkeep.db.keys import ApiKeyStore
from tests.e2e.test_generate_concurrency import counts
from tests.support.fake_openai import FakeOpenAI, count_tokens, ok, reply_for, slow
from tests.support.server import Server

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-upstream-secret-0c9d8e7f6a5b4c3d"
UPSTREAM_MODEL = "gpt-test-mini"
QUESTION = "Write a Python function that reverses a list"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You write short, correct code."},
    {"role": "user", "content": QUESTION},
]
# The same request to whitespace-only normalization (the chat default); case would differ.
SPACED: list[Any] = [
    {"role": "system", "content": "  You write short,\tcorrect code. "},
    {"role": "user", "content": [{"type": "text", "text": QUESTION.replace(" ", "  ")}]},
]


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def chat_server(servers: Callable[..., Server], upstream: FakeOpenAI) -> Callable[..., Server]:
    def start(workers: int = 1) -> Server:
        return servers(
            workers=workers,
            GENKEEP_PROFILES=json.dumps(
                {"default": {}, "gpt-test": {"backend": "openai", "model": UPSTREAM_MODEL}}
            ),
            GENKEEP_OPENAI_BASE_URL=upstream.base_url,
            GENKEEP_OPENAI_API_KEY=UPSTREAM_KEY,
            GENKEEP_OPENAI_MAX_RETRIES="0",
            GENKEEP_SERVE_WORKER="false",
        )

    return start


async def api_key(db_url: str, owner: str) -> str:
    database = Database(db_url)
    try:
        _, token = await ApiKeyStore(database).create(owner, "chat test")
    finally:
        await database.dispose()
    return token


def client(server: Server, token: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.url + "/v1", api_key=token, max_retries=0, timeout=60)


async def create(sdk: AsyncOpenAI, **kwargs: Any) -> tuple[httpx.Headers, Any]:
    """A chat completion and its response headers."""
    kwargs.setdefault("model", "gpt-test")
    kwargs.setdefault("messages", MESSAGES)
    raw = await sdk.chat.completions.with_raw_response.create(**kwargs)
    return raw.headers, raw.parse()


async def streamed(sdk: AsyncOpenAI, **kwargs: Any) -> tuple[httpx.Headers, str, dict[str, Any]]:
    """A streamed chat completion: headers, the joined content, and genkeep's last-chunk fields."""
    kwargs.setdefault("model", "gpt-test")
    kwargs.setdefault("messages", MESSAGES)
    async with sdk.chat.completions.with_streaming_response.create(stream=True, **kwargs) as raw:
        headers = raw.headers
        parts: list[str] = []
        genkeep: dict[str, Any] = {}
        async for chunk in await raw.parse():
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
                if choice.finish_reason == "stop":
                    genkeep = (chunk.model_extra or {}).get("genkeep", {})
    return headers, "".join(parts), genkeep


async def test_a_call_and_the_same_call_again_is_cached(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))

    first_headers, first = await create(sdk, temperature=0.2, max_tokens=300, seed=7)
    again_headers, again = await create(
        sdk, messages=SPACED, temperature=0.2, max_tokens=300, seed=7
    )

    assert first.object == "chat.completion"
    assert first.choices[0].message.content == reply_for(QUESTION, UPSTREAM_MODEL)
    assert first.choices[0].finish_reason == "stop"
    words = sum(count_tokens(m["content"]) for m in MESSAGES)
    assert first.usage is not None and first.usage.prompt_tokens == words
    assert first_headers["x-genkeep-cached"] == "false"
    assert first_headers["x-genkeep-version"] == "1"
    assert again_headers["x-genkeep-cached"] == "true"
    assert again_headers["x-genkeep-result-id"] == first_headers["x-genkeep-result-id"]
    assert first.id == again.id == "chatcmpl-" + first_headers["x-genkeep-result-id"]
    assert again.choices[0].message.content == first.choices[0].message.content
    # As stored from the generator, with the prompt reported cached: a hit spends nothing.
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens_details.cached_tokens == first.usage.prompt_tokens
    assert again.usage.model_dump(exclude={"prompt_tokens_details"}) == first.usage.model_dump(
        exclude={"prompt_tokens_details"}
    )
    assert upstream.calls == 1
    [sent] = upstream.requests
    # The client's genkeep key stays here; genkeep's upstream key goes upstream, never back.
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.body["model"] == UPSTREAM_MODEL
    assert sent.body["messages"] == MESSAGES
    assert (sent.body["temperature"], sent.body["max_tokens"], sent.body["seed"]) == (0.2, 300, 7)
    assert "stream" not in sent.body and "user" not in sent.body
    assert UPSTREAM_KEY not in str(first_headers) + first.model_dump_json()

    # Case matters under whitespace-only normalization, and so does every sampling parameter.
    await create(sdk, messages=[MESSAGES[0], {"role": "user", "content": QUESTION.upper()}])
    await create(sdk, temperature=0.3, max_tokens=300, seed=7)
    assert upstream.calls == 3


async def test_a_streamed_call_and_a_streamed_hit(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    upstream.plan(ok(piece_delay_s=0.01))
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))

    miss_headers, miss, miss_fields = await streamed(sdk, stream_options={"include_usage": True})
    stored_headers, stored = await create(sdk)
    hit_headers, hit, hit_fields = await streamed(sdk)

    assert miss == reply_for(QUESTION, UPSTREAM_MODEL)
    assert miss_headers["x-genkeep-cached"] == "false"
    assert miss_fields["version"] == 1 and miss_fields["persisted"]
    assert stored_headers["x-genkeep-cached"] == "true"
    assert stored_headers["x-genkeep-result-id"] == miss_fields["result_id"]
    assert stored.choices[0].message.content == miss == hit
    assert hit_headers["x-genkeep-cached"] == "true"
    assert hit_headers["x-genkeep-result-id"] == hit_fields["result_id"] == miss_fields["result_id"]
    assert upstream.calls == 1
    [sent] = upstream.requests
    assert sent.body["stream"] is True
    # Usage streamed from upstream was stored with the result.
    assert stored.usage is not None
    assert stored.usage.completion_tokens == count_tokens(miss)


async def test_no_cache_makes_version_two(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))

    first_headers, _ = await create(sdk)
    fresh_headers, _ = await create(sdk, extra_headers={"Cache-Control": "no-cache"})
    later_headers, _ = await create(sdk)

    assert fresh_headers["x-genkeep-version"] == "2"
    assert fresh_headers["x-genkeep-cached"] == "false"
    assert fresh_headers["x-genkeep-prompt-id"] == first_headers["x-genkeep-prompt-id"]
    assert later_headers["x-genkeep-cached"] == "true"
    assert later_headers["x-genkeep-result-id"] == fresh_headers["x-genkeep-result-id"]
    assert upstream.calls == 2


async def test_two_owners_never_share_a_result(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    server = chat_server()
    alice = client(server, await api_key(db_url, "alice"))
    bob = client(server, await api_key(db_url, "bob"))

    alice_headers, _ = await create(alice)
    bob_headers, _ = await create(bob)
    bob_again, _ = await create(bob)

    assert bob_headers["x-genkeep-cached"] == "false"
    assert bob_headers["x-genkeep-result-id"] != alice_headers["x-genkeep-result-id"]
    assert bob_again["x-genkeep-result-id"] == bob_headers["x-genkeep-result-id"]
    assert upstream.calls == 2
    async with httpx.AsyncClient(base_url=server.url) as raw:
        other = await raw.get(
            f"/v1/results/{alice_headers['x-genkeep-result-id']}",
            headers={"Authorization": f"Bearer {bob.api_key}"},
        )
    assert other.status_code == 404


async def test_fifty_concurrent_identical_calls_over_two_processes_make_one_generation(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    upstream.plan(slow(0.5, ok(piece_delay_s=0.01)))
    server = chat_server(workers=2)
    token = await api_key(db_url, "alice")
    sdk = client(server, token)  # the SDK's pool allows 1000 connections: all 50 at once

    async def one(index: int) -> tuple[str, str]:
        if index % 2:
            headers, content, fields = await streamed(sdk)
            return fields["result_id"], content
        headers, completion = await create(sdk)
        return headers["x-genkeep-result-id"], completion.choices[0].message.content

    answers = await asyncio.gather(*[one(i) for i in range(50)])

    assert len(set(answers)) == 1, set(answers)
    assert answers[0][1] == reply_for(QUESTION, UPSTREAM_MODEL)
    assert upstream.calls == 1
    assert await counts(db_url) == (1, 1)


async def test_unknown_model_and_unsupported_parameters_raise_the_sdk_errors(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))

    assert sorted(m.id for m in (await sdk.models.list()).data) == ["default", "gpt-test"]
    assert (await sdk.models.retrieve("gpt-test")).id == "gpt-test"
    with pytest.raises(openai.NotFoundError) as unknown:
        await create(sdk, model="gpt-nope")
    assert "gpt-nope" in unknown.value.message and unknown.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("gpt-nope")

    refusals: list[tuple[dict[str, Any], str]] = [
        ({"n": 2}, "n"),
        # Tools are served (tests/e2e/test_openai_dropin.py); their deprecated form is not.
        ({"extra_body": {"function_call": "auto"}}, "function_call"),
        ({"logprobs": True}, "logprobs"),
        # Wrong types are refused as OpenAI refuses them, not coerced (make fuzz found 0).
        ({"extra_body": {"logprobs": 0}}, "logprobs"),
        ({"extra_body": {"seed": "5"}}, "seed"),
        ({"extra_body": {"stream_options": {"include_usage": 1}}}, "stream_options.include_usage"),
        ({"functions": [{"name": "f"}]}, "functions"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                    }
                ]
            },
            "messages.0.content.0",
        ),
        ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages.0.role"),
        ({"extra_body": {"frobnicate": True}}, "frobnicate"),
        ({"messages": [{"role": "user", "content": "a\x00b"}]}, "messages.0.content"),
    ]
    for arguments, param in refusals:
        with pytest.raises(openai.BadRequestError) as refused:
            await create(sdk, **arguments)
        assert refused.value.param == (param or None), (arguments, refused.value.body)
        if param:
            assert param.split(".")[0] in refused.value.message
    with pytest.raises(openai.BadRequestError) as stream_refused:
        await streamed(sdk, n=3)
    assert stream_refused.value.param == "n"

    with pytest.raises(openai.AuthenticationError) as bad_key:
        await create(client(server, "gk_0123456789abcdef_not-a-secret"))
    assert "invalid" in bad_key.value.message
    assert upstream.calls == 0


async def test_a_client_that_disconnects_does_not_cancel_the_shared_generation(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    upstream.plan(ok(piece_delay_s=0.05))
    server = chat_server()
    token = await api_key(db_url, "alice")
    body = {"model": "gpt-test", "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {token}"}

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as raw,
        raw.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer,
    ):
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # one real piece arrived: leave in the middle of the generation

    _, completion = await create(client(server, token))

    assert completion.choices[0].message.content == reply_for(QUESTION, UPSTREAM_MODEL)
    assert upstream.calls == 1
    assert await counts(db_url) == (1, 1)
