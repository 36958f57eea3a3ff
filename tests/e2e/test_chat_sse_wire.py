"""The chat completions wire format, byte by byte, through plain ``httpx`` (a second client)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.test_chat_completions import MESSAGES, api_key, chat_server, upstream
from tests.support.fake_openai import FakeOpenAI, ok, reply_for
from tests.support.server import Server

pytestmark = pytest.mark.e2e
__all__ = ["chat_server", "upstream"]  # fixtures, shared with the SDK tests

BODY = {"model": "gpt-test", "messages": MESSAGES}


def events(raw: bytes) -> list[bytes]:
    """The events of an SSE body: each is exactly one ``data: `` line, ended by a blank line."""
    assert raw.endswith(b"\n\n"), raw[-80:]
    found = raw[:-2].split(b"\n\n")
    for one in found:
        assert one.startswith(b"data: "), one
        assert b"\n" not in one and b"\r" not in one, one
    return [one[len(b"data: ") :] for one in found]


def chunks(raw: bytes) -> list[dict[str, Any]]:
    payloads = events(raw)
    assert payloads[-1] == b"[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def check_chunks(found: list[dict[str, Any]], content: str) -> dict[str, Any]:
    """OpenAI's chunk sequence: a role, content pieces, an empty delta that stops; the last."""
    assert {c["object"] for c in found} == {"chat.completion.chunk"}
    assert len({c["id"] for c in found}) == 1 and found[0]["id"].startswith("chatcmpl-")
    assert len({c["created"] for c in found}) == 1
    first, *middle, last = found
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == content
    assert last["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    return last


async def test_streams_on_the_wire(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    upstream.plan(ok(piece_delay_s=0.01))
    server = chat_server()
    headers = {"Authorization": f"Bearer {await api_key(db_url, 'alice')}"}
    expected = reply_for(MESSAGES[-1]["content"], "gpt-test-mini")

    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as raw:
        miss = await raw.post("/v1/chat/completions", json={**BODY, "stream": True})
        whole = await raw.post("/v1/chat/completions", json=BODY)
        hit = await raw.post(
            "/v1/chat/completions",
            json={**BODY, "stream": True, "stream_options": {"include_usage": True}},
        )
        unknown = await raw.post(
            "/v1/chat/completions", json={**BODY, "model": "nope", "stream": True}
        )
        not_json = await raw.post(
            "/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}
        )

    assert miss.status_code == 200
    assert miss.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert miss.headers["x-genkeep-cached"] == "false"
    missed = check_chunks(chunks(miss.content), expected)
    result_id = missed["genkeep"]["result_id"]

    assert whole.headers["content-type"] == "application/json"
    body = whole.json()
    assert set(body) == {
        "id",
        "object",
        "created",
        "model",
        "system_fingerprint",
        "choices",
        "usage",
        "genkeep",
    }
    assert body["genkeep"]["cached"] is True and body["genkeep"]["result_id"] == result_id
    assert body["id"] == f"chatcmpl-{result_id}" and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": expected,
        "refusal": None,
    }
    # A hit: the prompt reported cached, for cost trackers.
    assert set(body["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
    }
    assert body["usage"]["prompt_tokens_details"] == {
        "cached_tokens": body["usage"]["prompt_tokens"]
    }

    assert hit.headers["x-genkeep-cached"] == "true"
    assert hit.headers["x-genkeep-result-id"] == result_id
    *hit_chunks, usage = chunks(hit.content)
    last = check_chunks(hit_chunks, expected)
    assert last["id"] == f"chatcmpl-{result_id}" and last["genkeep"]["cached"] is True
    assert usage["choices"] == [] and usage["usage"] == body["usage"]
    assert usage["id"] == last["id"]

    # Errors before the first byte are plain OpenAI error objects, not problem+json.
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/json"
    assert unknown.json() == {
        "error": {
            "message": "The model 'nope' does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert not_json.status_code == 400 and set(not_json.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }
    assert upstream.calls == 1


async def test_a_failed_generation_is_an_error_object(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    from tests.support.fake_openai import status

    upstream.plan(status(500, message="upstream melted"), status(500, message="melted again"))
    server = chat_server()
    headers = {"Authorization": f"Bearer {await api_key(db_url, 'alice')}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as raw:
        whole = await raw.post("/v1/chat/completions", json=BODY)
        streamed = await raw.post("/v1/chat/completions", json={**BODY, "stream": True})

    assert whole.status_code == 502
    error = whole.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "generation_failed"
    assert "upstream melted" in error["message"]
    # Failing before the first piece, a stream fails with a status, as a whole answer does.
    assert streamed.status_code == 502
    assert "melted again" in streamed.json()["error"]["message"]
