# ruff: noqa: F811  (the fixtures imported from test_chat_completions are parameters here)
"""A streamed miss reads as its hits will: one id (``chatcmpl-<result id>``) and one model
name on every chunk, the ones the stored result answers with. Official ``openai`` SDK, a
real ``genkeep serve``, the fake upstream counting calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

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
from tests.support.fake_openai import FakeOpenAI, ok
from tests.support.server import Server

pytestmark = pytest.mark.e2e

# OpenAI answers with a dated snapshot of the model that was asked for.
DATED = "gpt-test-mini-2026-01-15"


async def chunks(sdk: AsyncOpenAI, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("model", "gpt-test")
    kwargs.setdefault("messages", MESSAGES)
    return [chunk async for chunk in await sdk.chat.completions.create(stream=True, **kwargs)]


def one(values: list[Any]) -> Any:
    assert len(set(values)) == 1, values
    return values[0]


def result_id(stream: list[Any]) -> str:
    last = next(c for c in stream if c.choices and c.choices[0].finish_reason)
    found: str = (last.model_extra or {})["genkeep"]["result_id"]
    return found


async def test_a_streamed_miss_carries_the_id_and_model_of_its_hits(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    upstream.plan(ok(model=DATED, piece_delay_s=0.01))
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))

    miss = await chunks(sdk, stream_options={"include_usage": True})
    assert len(miss) > 4
    stream_id = one([c.id for c in miss])
    assert one([c.model for c in miss]) == DATED
    assert stream_id == "chatcmpl-" + result_id(miss)

    _, hit = await create(sdk)
    streamed_hit = await chunks(sdk)
    assert hit.id == stream_id and hit.model == DATED
    assert one([c.id for c in streamed_hit]) == stream_id
    assert one([c.model for c in streamed_hit]) == DATED
    assert upstream.calls == 1


async def test_streams_that_share_a_generation_share_its_id(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    upstream.plan(ok(model=DATED, piece_delay_s=0.05))
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))

    streams = await asyncio.gather(*(chunks(sdk) for _ in range(4)))
    ids = {one([c.id for c in stream]) for stream in streams}
    assert len(ids) == 1 and ids == {"chatcmpl-" + result_id(streams[0])}
    assert {one([c.model for c in stream]) for stream in streams} == {DATED}
    assert upstream.calls == 1


async def test_a_no_store_stream_keeps_one_id_of_its_own(
    chat_server: Callable[..., Server], upstream: FakeOpenAI, db_url: str
) -> None:
    upstream.plan(ok(model=DATED), ok(model=DATED))
    server = chat_server()
    sdk = client(server, await api_key(db_url, "alice"))
    no_store = {"Cache-Control": "no-store"}

    first = await chunks(sdk, extra_headers=no_store)
    second = await chunks(sdk, extra_headers=no_store)
    assert one([c.id for c in first]) != one([c.id for c in second])
    assert one([c.model for c in first]) == DATED
    assert upstream.calls == 2
