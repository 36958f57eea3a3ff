"""The OpenAI-compatible routes in process: error shapes stay on these routes, OpenAPI is true."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from genkeep.config import Settings
from tests.support.in_process import in_process

CHAT = {"model": "default", "messages": [{"role": "user", "content": "Say hi"}]}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(settings) as app:
        yield app.client


def assert_openai_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]


async def test_errors_are_openai_shaped_on_chat_routes_only(client: httpx.AsyncClient) -> None:
    assert_openai_error(await client.post("/v1/chat/completions", json={}), 400, "invalid_value")
    assert_openai_error(
        await client.post("/v1/chat/completions", json={**CHAT, "model": "x"}),
        404,
        "model_not_found",
    )
    assert_openai_error(
        await client.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": "Basic abc"}
        ),
        401,
        "unauthorized",
    )
    assert_openai_error(await client.get("/v1/models/x"), 404, "model_not_found")
    # The rest of the API keeps problem+json.
    other = await client.post("/v1/generate", json={"prompt": " "})
    assert other.headers["content-type"] == "application/problem+json"


async def test_text_that_cannot_be_stored_or_echoed_is_a_400_never_a_500(
    client: httpx.AsyncClient,
) -> None:
    lone = "\ud800"

    async def post(body: dict[str, object]) -> httpx.Response:
        # json.dumps escapes the lone surrogate (\\ud800), as a client's JSON may.
        return await client.post(
            "/v1/chat/completions",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )

    # The one input guard of every route refuses them first (genkeep.api.guard).
    assert_openai_error(await post({**CHAT, "model": f"m{lone}"}), 400, "invalid_text")
    assert_openai_error(await post({**CHAT, lone: 1}), 400, "invalid_text")
    for message in ({"role": "user", "content": f"a{lone}"}, {"role": "user", "content": "a\x00"}):
        answer = await post({**CHAT, "messages": [message]})
        assert answer.status_code == 400, answer.text
    stop = await post({**CHAT, "stop": [lone]})
    assert stop.status_code == 400, stop.text


async def test_an_unexpected_error_is_a_logged_openai_500(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = client._transport.app.state.services  # type: ignore[attr-defined]

    async def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(services.chat, "complete", broken)
    answer = await client.post("/v1/chat/completions", json=CHAT)
    assert_openai_error(answer, 500, "internal")
    assert answer.json()["error"]["type"] == "server_error"
    assert "a bug" not in answer.text


async def test_a_too_long_chat_is_context_length_exceeded(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """OpenAI's answer to a chat the model cannot take: 400 context_length_exceeded."""
    assert settings.max_chat_bytes >= 1024 * 1024
    fits = {
        **CHAT,
        "messages": [{"role": "user", "content": "x" * (settings.max_prompt_bytes * 2)}],
    }
    assert (await client.post("/v1/chat/completions", json=fits)).status_code == 200
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * settings.max_chat_bytes}]}
    answer = await client.post("/v1/chat/completions", json=big)
    assert_openai_error(answer, 400, "context_length_exceeded")
    assert answer.json()["error"]["param"] == "messages"


async def test_openapi_lists_what_the_chat_routes_send(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    for status in ("400", "401", "404", "413", "500", "502", "503", "504"):
        content = chat["responses"][status]["content"]["application/json"]
        assert content["schema"]["$ref"].endswith("/ErrorBody")
    assert "n" in schema["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert "/v1/models" in schema["paths"]


async def test_a_stored_chat_is_versioned_like_any_prompt(client: httpx.AsyncClient) -> None:
    chat = {
        **CHAT,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Say hi"}]},
        ],
        "stop": ["b", "a"],
        "max_completion_tokens": 50,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    }
    first = await client.post("/v1/chat/completions", json=chat)
    prompt_id = first.headers["x-genkeep-prompt-id"]
    stored = (await client.get(f"/v1/results/{first.headers['x-genkeep-result-id']}")).json()
    assert stored["content"] == first.json()["choices"][0]["message"]["content"]
    assert stored["prompt_tokens"] == first.json()["usage"]["prompt_tokens"] == 4

    regenerated = await client.post(f"/v1/prompts/{prompt_id}/regenerate")
    assert regenerated.status_code == 200, regenerated.text
    assert regenerated.json()["version"] == 2
    assert regenerated.json()["source"] == "regenerated"
    assert regenerated.json()["prompt_id"] == prompt_id

    again = await client.post("/v1/chat/completions", json={**chat, "stream": True})
    assert again.headers["x-genkeep-version"] == "2"
    assert again.headers["x-genkeep-result-id"] == regenerated.json()["result_id"]
    prompt = (await client.get(f"/v1/prompts/{prompt_id}")).json()
    assert [r["version"] for r in prompt["results"]] == [1, 2]
