"""The OpenAI-compatible generator: chat completions through the official ``openai`` SDK."""

from __future__ import annotations

import json
from typing import Any

from openai import omit
from openai.types.chat import ChatCompletionMessageParam

from genkeep.config import GeneratorProfile, Settings
from genkeep.core.generation import Generation
from genkeep.errors import GenerationFailed, UpstreamRateLimited, UpstreamTimeout
from genkeep.generate.chat_key import ChatCall
from genkeep.generate.embedder import EmbeddingCall, share_tokens
from genkeep.generate.generator import OnDelta
from genkeep.generate.openai_answer import StreamedAnswer, generation_of
from genkeep.generate.openai_client import ChatClient


class OpenAIGenerator:
    """One ``AsyncOpenAI`` client; genkeep retries 408/409/429/5xx, timeouts and lost
    connections (``ChatClient``), each attempt through the claim's gate.

    Retries back off exponentially with jitter (0.5 s doubling, at most 8 s) unless the server
    sends ``retry-after-ms`` or ``Retry-After`` (honoured up to 60 s). What is left answers:
    a 429 as 429 with the provider's Retry-After, a timeout as 504, a 5xx as 502.
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
    ) -> None:
        self._chat = ChatClient(
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            who="generator",
            purpose="the openai backend",
            error=GenerationFailed,
            rate_limited=UpstreamRateLimited,
            timed_out=UpstreamTimeout,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIGenerator:
        key = settings.openai_api_key
        return cls(
            base_url=settings.openai_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
        )

    async def generate(self, prompt: str, profile: GeneratorProfile) -> Generation:
        messages: list[ChatCompletionMessageParam] = []
        if profile.system_prompt:
            messages.append({"role": "system", "content": profile.system_prompt})
        messages.append({"role": "user", "content": prompt})
        completion = await self._chat.complete(
            model=profile.model,
            messages=messages,
            temperature=profile.temperature if profile.temperature is not None else omit,
            max_tokens=profile.max_tokens if profile.max_tokens is not None else omit,
        )
        return generation_of(completion, profile)

    async def chat(
        self, call: ChatCall, profile: GeneratorProfile, on_delta: OnDelta | None = None
    ) -> Generation:
        """Forward a chat with the parameters it sets; streamed when ``on_delta`` is given."""
        request = _chat_request(call, profile)
        if on_delta is None:
            return generation_of(await self._chat.complete(**request), profile)
        answer = StreamedAnswer(profile)
        # include_usage: the last chunk carries the usage, so streamed results record it too.
        chunks = self._chat.stream(**request, stream_options={"include_usage": True})
        async for chunk in chunks:
            piece = answer.add(chunk)
            if piece:
                on_delta(piece, answer.model or profile.model)
        return answer.generation()

    async def embed(
        self, texts: list[str], call: EmbeddingCall, profile: GeneratorProfile
    ) -> list[Generation]:
        """One ``embeddings.create`` for every text; the batch's usage shared among them."""
        request: dict[str, Any] = {
            "model": profile.model,
            "input": texts,
            "encoding_format": call.encoding_format,
        }
        if call.dimensions is not None:
            request["dimensions"] = call.dimensions
        answer = await self._chat.embed(**request)
        data = getattr(answer, "data", None)
        if not isinstance(data, list) or len(data) != len(texts):
            raise GenerationFailed(
                "generator's answer is not one embedding per input", reason="bad-body"
            )
        vectors: list[str] = [""] * len(texts)
        for position, item in enumerate(data):
            index = getattr(item, "index", position)
            vector = getattr(item, "embedding", None)
            if not isinstance(index, int) or not 0 <= index < len(texts):
                raise GenerationFailed(
                    "generator's embedding index is out of range", reason="bad-body"
                )
            if isinstance(vector, str):
                vectors[index] = vector
            elif isinstance(vector, list) and vector:
                vectors[index] = json.dumps(vector, separators=(",", ":"))
            else:
                raise GenerationFailed("generator sent an empty embedding", reason="empty")
        model = getattr(answer, "model", None)
        usage = getattr(answer, "usage", None)
        tokens = share_tokens(_count(getattr(usage, "prompt_tokens", None)), texts)
        return [
            Generation(
                content=vector,
                model=model if isinstance(model, str) and model else profile.model,
                prompt_tokens=count,
                completion_tokens=0,
            )
            for vector, count in zip(vectors, tokens, strict=True)
        ]

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._chat.aclose()


def _chat_request(call: ChatCall, profile: GeneratorProfile) -> dict[str, Any]:
    """The SDK arguments of ``call``; parameters it leaves unset are not sent."""
    messages = [message.as_wire() for message in call.messages]
    request: dict[str, Any] = {"model": profile.model, "messages": messages}
    optional = {
        "temperature": call.temperature,
        "top_p": call.top_p,
        call.max_tokens_param: call.max_tokens,
        "seed": call.seed,
        "presence_penalty": call.presence_penalty,
        "frequency_penalty": call.frequency_penalty,
        "reasoning_effort": call.reasoning_effort,
        "response_format": call.response_format,
        "stop": list(call.stop) or None,
        "tools": list(call.tools) if call.tools is not None else None,
        "tool_choice": call.tool_choice,
        "parallel_tool_calls": call.parallel_tool_calls,
    }
    request.update({name: value for name, value in optional.items() if value is not None})
    return request


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None
