"""OpenAIGenerator against a real loopback HTTP server speaking the chat completions API."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from genkeep.config import GeneratorProfile, load_settings
from genkeep.errors import ConfigurationError, GenerationFailed, UpstreamTimeout
from genkeep.generate.openai_backend import OpenAIGenerator
from tests.support.fake_openai import (
    FakeOpenAI,
    Planned,
    count_tokens,
    empty,
    garbage,
    ok,
    reply_for,
    slow,
    status,
)

API_KEY = "sk-test-genkeep-7f3a9c0d1e2b4a6f"
PROMPT = "Write a short note about durable storage"
PROFILE = GeneratorProfile(backend="openai", model="gpt-test-mini")
# The SDK waits retry-after-ms when it is positive; 1 ms keeps the retry tests fast.
FAST = 1

MakeGenerator = Callable[..., OpenAIGenerator]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def make_generator(server: FakeOpenAI) -> AsyncIterator[MakeGenerator]:
    made: list[OpenAIGenerator] = []

    def make(
        *, timeout_s: float = 2.0, max_retries: int = 0, base_url: str | None = None
    ) -> OpenAIGenerator:
        generator = OpenAIGenerator(
            base_url=base_url or server.base_url,
            api_key=API_KEY,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
        made.append(generator)
        return generator

    yield make
    for generator in made:
        await generator.aclose()


async def failure(
    generator: OpenAIGenerator, profile: GeneratorProfile = PROFILE
) -> GenerationFailed:
    with pytest.raises(GenerationFailed) as caught:
        await generator.generate(PROMPT, profile)
    return caught.value


async def test_success_records_usage_and_sends_the_profile(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    profile = PROFILE.model_copy(
        update={"temperature": 0.2, "max_tokens": 64, "system_prompt": "Answer in markdown."}
    )

    generation = await make_generator().generate(PROMPT, profile)

    assert generation.content == reply_for(PROMPT, "gpt-test-mini")
    assert generation.model == "gpt-test-mini"
    assert generation.prompt_tokens == count_tokens("Answer in markdown.") + count_tokens(PROMPT)
    assert generation.completion_tokens == count_tokens(generation.content)
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "gpt-test-mini"
    assert request.body["messages"] == [
        {"role": "system", "content": "Answer in markdown."},
        {"role": "user", "content": PROMPT},
    ]
    assert request.body["temperature"] == 0.2
    assert request.body["max_tokens"] == 64


async def test_unset_profile_fields_are_not_sent(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    await make_generator().generate(PROMPT, PROFILE)

    [request] = server.requests
    assert request.body["messages"] == [{"role": "user", "content": PROMPT}]
    assert "temperature" not in request.body
    assert "max_tokens" not in request.body


async def test_model_comes_from_the_response(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    server.plan(ok(model="gpt-test-mini-2025-01-01"))

    generation = await make_generator().generate(PROMPT, PROFILE)

    assert generation.model == "gpt-test-mini-2025-01-01"


async def test_missing_model_and_usage_fall_back(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    bare = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}}]}
    server.plan(garbage(json.dumps(bare).encode(), "application/json"))

    generation = await make_generator().generate(PROMPT, PROFILE)

    assert (generation.content, generation.model) == ("Hi.", "gpt-test-mini")
    assert (generation.prompt_tokens, generation.completion_tokens) == (None, None)


async def test_429_is_retried_with_backoff(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    server.plan(status(429, retry_after="0"), ok())
    started = time.monotonic()

    generation = await make_generator(max_retries=1).generate(PROMPT, PROFILE)

    assert generation.content == reply_for(PROMPT, "gpt-test-mini")
    assert server.calls == 2
    # The SDK ignores Retry-After: 0 and backs off 0.5 s less up to 25 % jitter.
    assert time.monotonic() - started >= 0.37


async def test_retry_after_ms_is_honoured(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    server.plan(status(429, retry_after_ms=20), ok())
    started = time.monotonic()

    await make_generator(max_retries=1).generate(PROMPT, PROFILE)

    assert server.calls == 2
    assert time.monotonic() - started < 0.37  # shorter than the SDK's own minimum backoff


async def test_two_500s_then_ok_succeeds_with_three_retries(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    server.plan(status(500, retry_after_ms=FAST), status(500, retry_after_ms=FAST), ok())

    generation = await make_generator(max_retries=3).generate(PROMPT, PROFILE)

    assert generation.content == reply_for(PROMPT, "gpt-test-mini")
    assert server.calls == 3


async def test_persistent_500_fails_after_max_retries(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    server.plan(*[status(500, retry_after_ms=FAST, message="backend on fire")] * 4)

    error = await failure(make_generator(max_retries=2))

    assert server.calls == 3
    assert error.detail == "generator answered 500: backend on fire"
    assert error.extra["upstream_status"] == 500


async def test_400_is_not_retried(server: FakeOpenAI, make_generator: MakeGenerator) -> None:
    server.plan(status(400, message="model 'gpt-test-mini' does not exist"))

    error = await failure(make_generator(max_retries=3))

    assert server.calls == 1
    assert error.detail == "generator answered 400: model 'gpt-test-mini' does not exist"


async def test_echoed_key_is_masked_in_the_detail(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    server.plan(status(401, message=f"Incorrect API key provided: {API_KEY}."))

    error = await failure(make_generator())

    assert API_KEY not in error.detail
    assert "[redacted]" in error.detail
    assert error.__cause__ is None and error.__suppress_context__


async def test_slow_answer_times_out_in_bounded_time(
    server: FakeOpenAI, make_generator: MakeGenerator
) -> None:
    server.plan(slow(5.0))
    started = time.monotonic()

    with pytest.raises(UpstreamTimeout) as caught:  # answered 504, not 502
        await make_generator(timeout_s=0.3, max_retries=0).generate(PROMPT, PROFILE)
    error = caught.value

    assert time.monotonic() - started < 1.5
    assert error.extra["reason"] == "timeout"
    assert "timed out" in error.detail
    for text in (str(error), repr(error.extra), str(error.__cause__)):
        assert API_KEY not in text


async def test_timeouts_are_retried(server: FakeOpenAI, make_generator: MakeGenerator) -> None:
    server.plan(slow(5.0), ok())

    generation = await make_generator(timeout_s=0.3, max_retries=1).generate(PROMPT, PROFILE)

    assert generation.content == reply_for(PROMPT, "gpt-test-mini")
    assert server.calls == 2


@pytest.mark.parametrize(
    "body",
    [
        garbage(),
        garbage(b"{not json", "application/json"),
        garbage(b'{"unexpected": true}', "application/json"),
    ],
    ids=["html", "broken-json", "wrong-shape"],
)
async def test_garbage_body_fails(
    server: FakeOpenAI, make_generator: MakeGenerator, body: Planned
) -> None:
    server.plan(body)

    error = await failure(make_generator(max_retries=2))

    assert server.calls == 1
    assert error.extra["reason"] == "bad-body"


@pytest.mark.parametrize("answer", [empty(), ok(content="  \n")], ids=["null", "blank"])
async def test_empty_content_fails(
    server: FakeOpenAI, make_generator: MakeGenerator, answer: Planned
) -> None:
    server.plan(answer)

    error = await failure(make_generator())

    assert error.extra["reason"] == "empty"


async def test_unreachable_server_fails(make_generator: MakeGenerator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    error = await failure(make_generator(base_url=f"http://127.0.0.1:{port}/v1"))

    assert error.extra["reason"] == "connection"


def test_missing_key_for_openai_itself_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    with pytest.raises(ConfigurationError):
        OpenAIGenerator(base_url=None, api_key=None, timeout_s=1, max_retries=0)


async def test_a_local_server_needs_no_key(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    generator = OpenAIGenerator(base_url=server.base_url, api_key=None, timeout_s=2, max_retries=0)
    try:
        generated = await generator.generate(PROMPT, PROFILE)
    finally:
        await generator.aclose()

    assert generated.content and server.calls == 1


async def test_from_settings(server: FakeOpenAI) -> None:
    settings = load_settings(
        _env_file=None,
        openai_base_url=server.base_url,
        openai_api_key=API_KEY,
        openai_timeout_s=2.0,
        openai_max_retries=0,
    )
    generator = OpenAIGenerator.from_settings(settings)
    try:
        await generator.generate(PROMPT, PROFILE)
    finally:
        await generator.aclose()

    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
