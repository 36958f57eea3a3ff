"""The hot routes answer every request exactly as the app's own routes would.

``genkeep.api.hot`` serves POSTs to /v1/generate and /v1/chat/completions itself and hands
the rest to the app. A query string always goes the app's way, so each request is sent
twice, once with ``?via=app``, and the two answers must be the same.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from genkeep.config import Settings
from tests.support.in_process import InProcess, in_process

CHAT = {"model": "default", "messages": [{"role": "user", "content": "Say hi"}]}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[InProcess]:
    async with in_process(settings.model_copy(update={"max_prompt_bytes": 1000})) as opened:
        yield opened


async def both(
    client: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    hot = await client.post(path, content=body, headers=headers)
    app = await client.post(f"{path}?via=app", content=body, headers=headers)
    return hot, app


def same_answer(hot: httpx.Response, app: httpx.Response) -> None:
    assert hot.status_code == app.status_code, (hot.text, app.text)
    for name in ("content-type", "www-authenticate", "retry-after"):
        assert hot.headers.get(name) == app.headers.get(name), name
    assert hot.json() == app.json()


REFUSED_GENERATE = [
    ({}, JSON),
    ({"prompt": ""}, JSON),
    ({"prompt": "   "}, JSON),
    ({"prompt": 5}, JSON),
    ({"prompt": "a\u0000b"}, JSON),
    ({"prompt": "a\ud800b"}, JSON),
    ({"prompt": "x" * 2000}, JSON),
    ({"prompt": "known", "profile": "nope"}, JSON),
    ({"prompt": "known", "unknown": 1}, JSON),
    ({"prompt": "known", "cache": {"max_age": False}}, JSON),
    ({"prompt": "known"}, {**JSON, "Authorization": "Basic abc"}),
    ({"prompt": "known"}, {**JSON, "Authorization": "Bearer no-such-key"}),
    ({"prompt": "known"}, {"Content-Type": "text/plain"}),
    ([], JSON),
    ("not json", JSON),
]

REFUSED_CHAT = [
    ({}, JSON),
    ({**CHAT, "model": "nope"}, JSON),
    ({**CHAT, "n": 2}, JSON),
    ({**CHAT, "tools": [{"type": "function"}]}, JSON),
    ({**CHAT, "messages": []}, JSON),
    ({**CHAT, "messages": [{"role": "user", "content": "a\u0000"}]}, JSON),
    ({**CHAT, "temperature": 9}, JSON),
    ({**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}, JSON),
    (CHAT, {**JSON, "Authorization": "Basic abc"}),
]


def encoded(body: object) -> bytes:
    return (
        body.encode() if isinstance(body, str) and body == "not json" else json.dumps(body).encode()
    )


@pytest.mark.parametrize(("body", "headers"), REFUSED_GENERATE)
async def test_generate_refuses_as_the_app_does(
    app: InProcess, body: object, headers: dict[str, str]
) -> None:
    hot, via_app = await both(app.client, "/v1/generate", encoded(body), headers)
    assert 400 <= hot.status_code < 500
    assert hot.headers["content-type"] == "application/problem+json"
    same_answer(hot, via_app)


@pytest.mark.parametrize(("body", "headers"), REFUSED_CHAT)
async def test_chat_refuses_as_the_app_does(
    app: InProcess, body: object, headers: dict[str, str]
) -> None:
    hot, via_app = await both(app.client, "/v1/chat/completions", encoded(body), headers)
    assert 400 <= hot.status_code < 500
    assert set(hot.json()) == {"error"}
    same_answer(hot, via_app)


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    yield body[:5]
    yield body[5:]


async def test_every_way_of_sending_a_request_reaches_the_same_result(app: InProcess) -> None:
    """Hot, handed on for its query, for its chunked body (no Content-Length), or for its
    media type: one stored result, generated once."""
    body = json.dumps({"prompt": "One result, however it is asked for"}).encode()
    client = app.client
    first = await client.post("/v1/generate", content=body, headers=JSON)
    assert first.status_code == 200 and first.json()["cached"] is False
    answers = [
        await client.post("/v1/generate?via=app", content=body, headers=JSON),
        await client.post("/v1/generate", content=chunked(body), headers=JSON),
        await client.post(
            "/v1/generate",
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        ),
        await client.post(
            "/v1/generate", content=body, headers={"Content-Type": "application/vnd.x+json"}
        ),
        await client.post("/v1/generate", content=b"\xef\xbb\xbf" + body, headers=JSON),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {**first.json(), "cached": True}
    chat_body = json.dumps(CHAT).encode()
    chat = await client.post("/v1/chat/completions", content=chat_body, headers=JSON)
    again = await client.post("/v1/chat/completions", content=chunked(chat_body), headers=JSON)
    assert chat.status_code == again.status_code == 200
    assert again.headers["x-genkeep-cached"] == "true"
    assert again.headers["x-genkeep-result-id"] == chat.headers["x-genkeep-result-id"]
