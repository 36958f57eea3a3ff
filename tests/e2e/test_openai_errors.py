# ruff: noqa: F811  (the fixtures imported from test_chat_completions are parameters here)
"""Answers the official ``openai`` SDK understands, from a real ``genkeep serve``: unserved
routes, the request id, a chat too long. The fake upstream counts the calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from tests.e2e.test_chat_completions import (  # noqa: F401 (fixtures)
    MESSAGES,
    api_key,
    chat_server,
    client,
    create,
    upstream,
)
from tests.support.fake_openai import FakeOpenAI
from tests.support.server import Server

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def unserved(sdk: AsyncOpenAI) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "responses": lambda: sdk.responses.create(model="gpt-test", input="hello"),
        "completions": lambda: sdk.completions.create(model="gpt-test", prompt="hello"),
        "moderations": lambda: sdk.moderations.create(input="hello"),
        "images": lambda: sdk.images.generate(prompt="a cat"),
        "speech": lambda: sdk.audio.speech.create(model="tts-1", voice="alloy", input="hello"),
    }


async def test_unserved_routes_raise_the_sdks_not_found(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))
    for name, call in unserved(sdk).items():
        with pytest.raises(openai.NotFoundError) as raised:
            await call()
        error = raised.value
        assert error.status_code == 404, name
        assert isinstance(error.body, dict) and error.body["type"] == "invalid_request_error"
        assert "Invalid URL (POST /v1/" in error.message, name
        assert error.request_id and len(error.request_id) == 32, name
    # genkeep's own routes keep problem+json, an unknown path outside /v1 too.
    async with httpx.AsyncClient(base_url=server.url) as http:
        for path in ("/v1/jobs/nope", "/nowhere"):
            answer = await http.get(path)
            assert answer.status_code == 404
            assert answer.headers["content-type"] == "application/problem+json"
    assert upstream.calls == 0


async def test_every_answer_carries_the_request_id_the_audit_records(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    server = chat_server()
    token = await api_key(db_url, "alice")
    sdk = client(server, token)
    miss_headers, _ = await create(sdk)
    hit_headers, _ = await create(sdk)
    ids = {miss_headers["x-request-id"], hit_headers["x-request-id"]}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)
    async with sdk.chat.completions.with_streaming_response.create(
        model="gpt-test", messages=MESSAGES, stream=True
    ) as raw:
        assert len(raw.headers["x-request-id"]) == 32
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.chat.completions.create(model="gpt-test", messages=MESSAGES, temperature=9)
    assert raised.value.request_id and len(raised.value.request_id) == 32
    traced = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    bearer = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        for answer in (
            await http.get("/health", headers=traced),
            await http.get("/v1/jobs", headers=traced),  # 401, problem+json
            await http.post("/v1/chat/completions", json={}, headers={**traced, **bearer}),
        ):
            assert answer.headers["x-request-id"] == TRACE_ID, answer.text
        # The id a client sees is the one the audit log records for its change.
        created = await http.post("/v1/jobs", json={"title": "t"}, headers=bearer)
        events = await http.get(f"/v1/jobs/{created.json()['id']}/events", headers=bearer)
        assert [e["trace_id"] for e in events.json()] == [created.headers["x-request-id"]]
    assert upstream.calls == 1


async def test_a_chat_beyond_the_limit_is_context_length_exceeded(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))
    # Some 50k tokens, past the 64 KiB prompt limit of /v1/generate: a long context is served.
    long = [{"role": "user", "content": "word " * 50_000}]
    _, answer = await create(sdk, messages=long)
    assert answer.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as raised:
        await create(sdk, messages=[{"role": "user", "content": "x" * (1024 * 1024 + 1)}])
    error = raised.value
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert isinstance(error.body, dict) and error.body["type"] == "invalid_request_error"
    assert upstream.calls == 1
