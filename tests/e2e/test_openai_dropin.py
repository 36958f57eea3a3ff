"""genkeep as a drop-in OpenAI endpoint for real clients: the official ``openai`` SDK,
LangChain (``ChatOpenAI.bind_tools``, ``OpenAIEmbeddings``) and litellm, unchanged, against
one real ``genkeep serve`` per database. The fake upstream counts calls and records what it
received; each test counts only its own requests (the server and upstream are shared)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel

from tests.conftest import BACKENDS, _admin, admin_url, process_env
from tests.e2e.test_chat_completions import api_key
from tests.support.fake_openai import FakeOpenAI, RecordedRequest, fake_vector, ok, tool_calls
from tests.support.postgres import dsn
from tests.support.server import Server

pytestmark = pytest.mark.e2e

UPSTREAM_MODEL = "gpt-test-mini"
EMBEDDING_MODEL = "text-embedding-test"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Upstream:
    """The module's fake upstream, with a mark: what arrived since a test began."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self._start = 0

    def begin(self) -> None:
        self._start = len(self.fake.requests)

    def since(self, path: str = "/v1/chat/completions") -> list[RecordedRequest]:
        return [r for r in self.fake.requests[self._start :] if r.path == path]

    def embedded(self) -> list[list[str]]:
        return [
            [r.body["input"]] if isinstance(r.body["input"], str) else r.body["input"]
            for r in self.since("/v1/embeddings")
        ]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest,
    templates: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    fake: FakeOpenAI,
) -> Iterator[Server]:
    """One ``genkeep serve`` per database for the whole module (a server start is seconds)."""
    folder = tmp_path_factory.mktemp(f"dropin-{request.param}")
    name = f"genkeep_dropin_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        shutil.copyfile(templates["sqlite"], folder / "genkeep.db")
        url = f"sqlite:///{folder / 'genkeep.db'}"
    else:
        asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{templates["postgresql"]}"'))
        url = dsn(admin_url(), name)
    profiles = {
        "default": {},
        "gpt-test": {"backend": "openai", "model": UPSTREAM_MODEL},
        "embed": {"backend": "openai", "model": EMBEDDING_MODEL},
    }
    env = {
        **process_env(url, folder),
        "GENKEEP_PROFILES": json.dumps(profiles),
        "GENKEEP_OPENAI_BASE_URL": fake.base_url,
        "GENKEEP_OPENAI_API_KEY": "sk-upstream",
        "GENKEEP_OPENAI_MAX_RETRIES": "0",
        "GENKEEP_SERVE_WORKER": "false",
    }
    started = Server(env, folder / "server.log").start()
    started.token = asyncio.run(api_key(url, "dropin"))  # type: ignore[attr-defined]
    try:
        yield started
    finally:
        started.stop()
        if request.param == "postgresql":
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def upstream(fake: FakeOpenAI) -> Upstream:
    found = Upstream(fake)
    found.begin()
    return found


@pytest.fixture
def sdk(server: Server) -> Any:
    return AsyncOpenAI(base_url=server.url + "/v1", api_key=token(server), max_retries=0)


def token(server: Server) -> str:
    found: str = server.token  # type: ignore[attr-defined]
    return found


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- tool calls -----------------------------------------------------------------------------


async def test_a_tool_call_and_its_hit(sdk: Any, upstream: Upstream) -> None:
    upstream.fake.plan(tool_calls(("call_w1", "get_weather", {"city": "Paris"})))
    kwargs: dict[str, Any] = {
        "model": "gpt-test",
        "messages": ask("What is the weather in Paris?"),
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }
    miss = await sdk.chat.completions.with_raw_response.create(**kwargs)
    hit = await sdk.chat.completions.with_raw_response.create(**kwargs)
    first, again = miss.parse(), hit.parse()

    assert [r.body["tools"] for r in upstream.since()] == [[WEATHER_TOOL]]
    [sent] = upstream.since()
    assert (sent.body["tool_choice"], sent.body["parallel_tool_calls"]) == ("auto", False)
    assert first.choices[0].finish_reason == again.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None and again.choices[0].message.content is None
    [call] = first.choices[0].message.tool_calls or []
    assert call.id == "call_w1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert again.choices[0].message.tool_calls == first.choices[0].message.tool_calls
    assert (miss.headers["x-genkeep-cached"], hit.headers["x-genkeep-cached"]) == ("false", "true")
    assert again.id == first.id

    # Other tools are another request.
    await sdk.chat.completions.create(**{**kwargs, "tool_choice": "required"})
    assert len(upstream.since()) == 2


class Weather(BaseModel):
    city: str


async def test_parse_with_a_strict_tool(sdk: Any, upstream: Upstream) -> None:
    upstream.fake.plan(tool_calls(("call_p1", "Weather", {"city": "Oslo"})))
    kwargs: dict[str, Any] = {
        "model": "gpt-test",
        "messages": ask("Weather in Oslo, as a tool call"),
        "tools": [openai.pydantic_function_tool(Weather)],
    }
    for _ in range(2):
        parsed = await sdk.chat.completions.parse(**kwargs)
        [call] = parsed.choices[0].message.tool_calls or []
        assert call.function.parsed_arguments == Weather(city="Oslo")
    assert len(upstream.since()) == 1
    assert upstream.since()[0].body["tools"][0]["function"]["strict"] is True


async def test_a_tool_result_round_trip(sdk: Any, upstream: Upstream) -> None:
    upstream.fake.plan(tool_calls(("call_r1", "get_weather", {"city": "Rome"})))
    question = ask("Weather in Rome?")
    first = await sdk.chat.completions.create(
        model="gpt-test", messages=question, tools=[WEATHER_TOOL]
    )
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    answered = [
        *question,
        assistant,
        {"role": "tool", "tool_call_id": "call_r1", "content": '{"sky": "sunny"}'},
    ]
    upstream.fake.plan(ok("It is sunny in Rome."))
    final = await sdk.chat.completions.create(
        model="gpt-test", messages=answered, tools=[WEATHER_TOOL]
    )
    again = await sdk.chat.completions.create(
        model="gpt-test", messages=answered, tools=[WEATHER_TOOL]
    )
    assert final.choices[0].message.content == again.choices[0].message.content
    assert final.choices[0].message.content == "It is sunny in Rome."
    calls = upstream.since()
    assert len(calls) == 2
    # The conversation went upstream as the client sent it.
    sent = calls[1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_r1" and sent[1]["content"] is None
    assert sent[2] == {"role": "tool", "content": '{"sky": "sunny"}', "tool_call_id": "call_r1"}


async def _streamed(sdk: Any, **kwargs: Any) -> tuple[list[Any], dict[int, dict[str, Any]]]:
    chunks = [c async for c in await sdk.chat.completions.create(stream=True, **kwargs)]
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or ():
                found = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                found["id"] = delta.id or found["id"]
                if delta.function is not None:
                    found["name"] += delta.function.name or ""
                    found["arguments"] += delta.function.arguments or ""
    return chunks, calls


async def test_streamed_tool_calls_and_their_hits(sdk: Any, upstream: Upstream) -> None:
    upstream.fake.plan(
        tool_calls(
            ("call_s1", "get_weather", {"city": "Lima"}),
            ("call_s2", "get_weather", {"city": "Kyiv"}),
        )
    )
    kwargs: dict[str, Any] = {
        "model": "gpt-test",
        "messages": ask("Weather in Lima and Kyiv?"),
        "tools": [WEATHER_TOOL],
    }
    miss, miss_calls = await _streamed(sdk, **kwargs)
    hit, hit_calls = await _streamed(sdk, **kwargs)
    whole = await sdk.chat.completions.create(**kwargs)

    expected = {
        0: {"id": "call_s1", "name": "get_weather", "arguments": '{"city": "Lima"}'},
        1: {"id": "call_s2", "name": "get_weather", "arguments": '{"city": "Kyiv"}'},
    }
    assert miss_calls == hit_calls == expected
    finishes = [
        c.choices[0].finish_reason for c in miss + hit if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls", "tool_calls"]
    assert [c.id for c in whole.choices[0].message.tool_calls or []] == ["call_s1", "call_s2"]
    # The stream's id is the id its hits carry.
    assert {c.id for c in miss} == {c.id for c in hit} == {whole.id}
    assert len(upstream.since()) == 1


# -- every field kept -------------------------------------------------------------------------


async def test_a_length_cut_answer_is_kept_and_not_served_to_more_tokens(
    sdk: Any, upstream: Upstream
) -> None:
    upstream.fake.plan(ok("A long answer that was", finish_reason="length"))
    kwargs: dict[str, Any] = {"model": "gpt-test", "messages": ask("Tell me everything")}
    cut = await sdk.chat.completions.create(max_tokens=5, **kwargs)
    again = await sdk.chat.completions.create(max_tokens=5, **kwargs)
    upstream.fake.plan(ok("A long answer that was complete."))
    longer = await sdk.chat.completions.create(max_tokens=500, **kwargs)

    assert cut.choices[0].finish_reason == again.choices[0].finish_reason == "length"
    assert longer.choices[0].finish_reason == "stop"
    assert longer.choices[0].message.content == "A long answer that was complete."
    assert [r.body["max_tokens"] for r in upstream.since()] == [5, 500]


async def test_reasoning_and_usage_details_on_a_hit(sdk: Any, upstream: Upstream) -> None:
    details = {
        "completion_tokens_details": {"reasoning_tokens": 7, "accepted_prediction_tokens": 0},
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    upstream.fake.plan(ok("42", reasoning_content="six times seven", usage_details=details))
    kwargs: dict[str, Any] = {"model": "gpt-test", "messages": ask("Six times seven?")}
    miss = await sdk.chat.completions.create(**kwargs)
    hit = await sdk.chat.completions.create(**kwargs)
    chunks = [
        c
        async for c in await sdk.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **kwargs
        )
    ]

    for answer in (miss, hit):
        assert (answer.choices[0].message.model_extra or {})[
            "reasoning_content"
        ] == "six times seven"
        assert answer.usage is not None and answer.usage.completion_tokens_details is not None
        assert answer.usage.completion_tokens_details.reasoning_tokens == 7
        assert answer.system_fingerprint == "fp_fake"
    assert miss.usage is not None and hit.usage is not None
    assert miss.usage.prompt_tokens_details.cached_tokens == 0
    # A hit: the whole prompt cached, for cost trackers; genkeep's object says it was free.
    assert hit.usage.prompt_tokens_details.cached_tokens == hit.usage.prompt_tokens
    assert (hit.model_extra or {})["genkeep"]["cached"] is True
    assert (miss.model_extra or {})["genkeep"]["cached"] is False
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "")
        for c in chunks
        if c.choices
    )
    assert reasoning == "six times seven"
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 7
    assert len(upstream.since()) == 1


async def test_a_broken_upstream_stream_says_what_failed(sdk: Any, upstream: Upstream) -> None:
    upstream.fake.plan(ok("one two three four five six", break_after=2, piece_delay_s=0.01))
    stream = await sdk.chat.completions.create(
        model="gpt-test", messages=ask("Count to six"), stream=True
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        async for chunk in stream:
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen) == "one two "
    assert "stream broke off after" in raised.value.message


async def test_prompts_that_differ_in_indentation_are_two_answers(
    sdk: Any, upstream: Upstream
) -> None:
    code = "Explain:\nfor x in xs:\n    if x:\n        print(x)\n    print('done')\n"
    other = code.replace("\n    print('done')", "\n        print('done')")
    for text in (code, other, code.replace("\n", "\r\n")):
        await sdk.chat.completions.create(model="gpt-test", messages=ask(text))
    assert len(upstream.since()) == 2


# -- embeddings -----------------------------------------------------------------------------


def decoded(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


async def test_an_embeddings_batch_sends_only_its_misses(sdk: Any, upstream: Upstream) -> None:
    texts = [f"document {i} {uuid.uuid4().hex}" for i in range(100)]
    first = await sdk.embeddings.create(model="embed", input=texts[::2])
    both = await sdk.embeddings.with_raw_response.create(model="embed", input=texts)
    batch = both.parse()

    assert upstream.embedded() == [texts[::2], texts[1::2]]
    assert [d.index for d in batch.data] == list(range(100))
    assert [d.embedding for d in batch.data] == [fake_vector(t) for t in texts]
    assert [d.embedding for d in first.data] == [d.embedding for d in batch.data[::2]]
    assert batch.model == EMBEDDING_MODEL
    words = sum(len(t.split()) for t in texts)
    assert batch.usage.prompt_tokens == batch.usage.total_tokens == words
    assert (batch.model_extra or {})["genkeep"]["cached_inputs"] == 50
    assert both.headers["x-genkeep-cached"] == "false"


async def test_concurrent_identical_inputs_make_one_call(sdk: Any, upstream: Upstream) -> None:
    text = f"the same text {uuid.uuid4().hex}"
    answers = await asyncio.gather(
        *(sdk.embeddings.create(model="embed", input=text) for _ in range(50))
    )
    assert upstream.embedded() == [[text]]
    assert {tuple(a.data[0].embedding) for a in answers} == {tuple(fake_vector(text))}


async def test_base64_and_float_encodings_say_the_same_vectors(
    sdk: Any, upstream: Upstream
) -> None:
    texts = ["alpha beta", "gamma"]
    for model in ("embed", "default"):
        floats = await sdk.embeddings.create(model=model, input=texts, encoding_format="float")
        encoded = await sdk.embeddings.create(model=model, input=texts, encoding_format="base64")
        sdk_default = await sdk.embeddings.create(model=model, input=texts, dimensions=16)
        again = await sdk.embeddings.create(model=model, input=texts, dimensions=16)
        assert [decoded(d.embedding) for d in encoded.data] == [d.embedding for d in floats.data]
        assert [d.embedding for d in again.data] == [d.embedding for d in sdk_default.data]
    builtin = [d.embedding for d in sdk_default.data]
    assert [len(v) for v in builtin] == [16, 16] and builtin[0] != builtin[1]
    # The built-in profile embeds offline: only the upstream profile went upstream.
    assert [r.body["encoding_format"] for r in upstream.since("/v1/embeddings")] == [
        "float",
        "base64",
        "base64",
    ]


async def test_embeddings_refuse_what_they_cannot_key(sdk: Any) -> None:
    with pytest.raises(openai.BadRequestError, match="token arrays"):
        await sdk.embeddings.create(model="embed", input=[[1, 2, 3]])
    with pytest.raises(openai.NotFoundError):
        await sdk.embeddings.create(model="no-such-model", input="x")


# -- LangChain and litellm as clients -------------------------------------------------------


async def test_langchain_bind_tools_and_embeddings(server: Server, upstream: Upstream) -> None:
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    upstream.fake.plan(tool_calls(("call_l1", "get_weather", {"city": "Quito"})))
    chat = ChatOpenAI(
        model="gpt-test",
        base_url=server.url + "/v1",
        api_key=token(server),
        max_retries=0,
    ).bind_tools([WEATHER_TOOL])
    first = await chat.ainvoke("Weather in Quito?")
    again = await chat.ainvoke("Weather in Quito?")
    assert first.tool_calls == again.tool_calls
    assert first.tool_calls[0]["args"] == {"city": "Quito"}
    # LangChain's usage reads the hit's prompt as cached.
    usage = again.usage_metadata
    assert usage is not None
    assert usage["input_token_details"]["cache_read"] == usage["input_tokens"]
    assert len(upstream.since()) == 1

    # Its pydantic aliases (base_url, api_key) are what a user writes; mypy sees the names.
    settings: dict[str, Any] = {"base_url": server.url + "/v1", "api_key": token(server)}
    embeddings = OpenAIEmbeddings(
        model="embed",
        check_embedding_ctx_length=False,  # else it sends tiktoken ids, which need a download
        max_retries=0,
        **settings,
    )
    docs = [f"lc doc {uuid.uuid4().hex}", f"lc doc {uuid.uuid4().hex}"]
    vectors = await embeddings.aembed_documents(docs)
    assert vectors == await embeddings.aembed_documents(docs)
    assert [len(v) for v in vectors] == [8, 8]
    assert upstream.embedded() == [docs]


async def test_litellm_as_a_client(server: Server, upstream: Upstream) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    upstream.fake.plan(tool_calls(("call_x1", "get_weather", {"city": "Accra"})))
    kwargs: dict[str, Any] = {
        "model": "openai/gpt-test",
        "api_base": server.url + "/v1",
        "api_key": token(server),
        "messages": ask("Weather in Accra?"),
        "tools": [WEATHER_TOOL],
    }
    first = await litellm.acompletion(**kwargs)
    again = await litellm.acompletion(**kwargs)
    assert first.choices[0].message.tool_calls[0].id == "call_x1"
    assert again.choices[0].message.tool_calls[0].function.arguments == (
        first.choices[0].message.tool_calls[0].function.arguments
    )
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens
    vectors = await litellm.aembedding(
        model="openai/embed", api_base=server.url + "/v1", api_key=token(server), input=["ll"]
    )
    assert len(vectors.data[0]["embedding"]) == 8
    assert len(upstream.since()) == 1
    # litellm keeps its HTTP clients across calls: closed on this test's event loop.
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    await close_litellm_async_clients()  # type: ignore[no-untyped-call]
