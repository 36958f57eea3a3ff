"""Both generators answer chats: what they forward, stream and report as usage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from genkeep.config import GeneratorProfile
from genkeep.errors import GenerationFailed
from genkeep.generate.builtin import BuiltinGenerator, render
from genkeep.generate.chat_key import ChatCall, ChatMessage
from genkeep.generate.openai_backend import OpenAIGenerator
from tests.support.fake_openai import FakeOpenAI, count_tokens, ok, reply_for, status

PROFILE = GeneratorProfile(backend="openai", model="gpt-test-mini")
CALL = ChatCall(
    messages=(
        ChatMessage("system", "Be brief."),
        ChatMessage("user", ("Reverse", "a list"), name="ana"),
    ),
    temperature=0.1,
    top_p=0.5,
    max_tokens=99,
    stop=("END",),
    seed=3,
    presence_penalty=0.2,
    frequency_penalty=0.3,
    reasoning_effort="low",
    response_format={"type": "json_object"},
    max_tokens_param="max_completion_tokens",
)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def generator(upstream: FakeOpenAI) -> AsyncIterator[OpenAIGenerator]:
    made = OpenAIGenerator(base_url=upstream.base_url, api_key="sk-up", timeout_s=5, max_retries=0)
    yield made
    await made.aclose()


async def test_openai_backend_forwards_every_parameter_it_keys(
    upstream: FakeOpenAI, generator: OpenAIGenerator
) -> None:
    generation = await generator.chat(CALL, PROFILE)

    [sent] = upstream.requests
    assert sent.body == {
        "model": "gpt-test-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Reverse"},
                    {"type": "text", "text": "a list"},
                ],
                "name": "ana",
            },
        ],
        "temperature": 0.1,
        "top_p": 0.5,
        "max_completion_tokens": 99,
        "seed": 3,
        "presence_penalty": 0.2,
        "frequency_penalty": 0.3,
        "reasoning_effort": "low",
        "response_format": {"type": "json_object"},
        "stop": ["END"],
    }
    assert generation.content == reply_for("Reverse\na list", "gpt-test-mini")
    assert generation.completion_tokens == count_tokens(generation.content)


async def test_openai_backend_streams_pieces_and_records_streamed_usage(
    upstream: FakeOpenAI, generator: OpenAIGenerator
) -> None:
    pieces: list[str] = []
    models: set[str] = set()

    def take(piece: str, model: str) -> None:
        pieces.append(piece)
        models.add(model)

    generation = await generator.chat(ChatCall((ChatMessage("user", "Hi there"),)), PROFILE, take)

    assert len(pieces) > 3 and "".join(pieces) == generation.content
    # Every piece names the model the result is stored with.
    assert models == {generation.model}
    assert generation.content == reply_for("Hi there", "gpt-test-mini")
    assert generation.prompt_tokens == 2
    assert generation.completion_tokens == count_tokens(generation.content)
    [sent] = upstream.requests
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}


async def test_openai_backend_stream_failures_are_generation_failures(
    upstream: FakeOpenAI, generator: OpenAIGenerator
) -> None:
    upstream.plan(status(503, message="busy"), ok(""))
    with pytest.raises(GenerationFailed, match="503"):
        await generator.chat(CALL, PROFILE, lambda piece, model: None)
    with pytest.raises(GenerationFailed, match="empty"):
        await generator.chat(CALL, PROFILE, lambda piece, model: None)


async def test_builtin_answers_the_last_user_message_whole_or_streamed() -> None:
    profile = GeneratorProfile()
    call = ChatCall(
        (ChatMessage("user", "First"), ChatMessage("assistant", "x"), ChatMessage("user", "Second"))
    )
    whole = await BuiltinGenerator().chat(call, profile)
    pieces: list[str] = []
    streamed = await BuiltinGenerator().chat(call, profile, lambda piece, _: pieces.append(piece))

    assert whole == streamed
    assert whole.content == render("Second", profile.model) == "".join(pieces)
    assert whole.prompt_tokens == 3 and whole.completion_tokens == len(whole.content.split())
