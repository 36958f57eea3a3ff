"""The OpenAI-compatible generator: chat completions through the official ``openai`` SDK."""

from __future__ import annotations

from typing import Any

from openai import omit
from openai.types.chat import ChatCompletionMessageParam

from genkeep.config import GeneratorProfile, Settings
from genkeep.core.generation import Generation
from genkeep.errors import GenerationFailed, UpstreamRateLimited, UpstreamTimeout
from genkeep.generate.chat_key import ChatCall
from genkeep.generate.generator import OnDelta
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
        return _to_generation(completion, profile)

    async def chat(
        self, call: ChatCall, profile: GeneratorProfile, on_delta: OnDelta | None = None
    ) -> Generation:
        """Forward a chat with the parameters it sets; streamed when ``on_delta`` is given."""
        request = _chat_request(call, profile)
        if on_delta is None:
            return _to_generation(await self._chat.complete(**request), profile)
        parts: list[str] = []
        model: object = None
        usage: object = None
        # include_usage: the last chunk carries the usage, so streamed results record it too.
        chunks = self._chat.stream(**request, stream_options={"include_usage": True})
        async for chunk in chunks:
            # The first name the upstream gives is the stream's: every piece was shown with it.
            model = model or getattr(chunk, "model", None)
            usage = getattr(chunk, "usage", None) or usage
            for choice in getattr(chunk, "choices", None) or ():
                piece = getattr(getattr(choice, "delta", None), "content", None)
                if isinstance(piece, str) and piece:
                    parts.append(piece)
                    on_delta(piece, model if isinstance(model, str) and model else profile.model)
        content = "".join(parts)
        if not content.strip():
            raise GenerationFailed("generator streamed empty content", reason="empty")
        return Generation(
            content=content,
            model=model if isinstance(model, str) and model else profile.model,
            prompt_tokens=_count(getattr(usage, "prompt_tokens", None)),
            completion_tokens=_count(getattr(usage, "completion_tokens", None)),
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._chat.aclose()


def _chat_request(call: ChatCall, profile: GeneratorProfile) -> dict[str, Any]:
    """The SDK arguments of ``call``; parameters it leaves unset are not sent."""
    messages: list[dict[str, Any]] = []
    for message in call.messages:
        content: Any = (
            message.content
            if isinstance(message.content, str)
            else [{"type": "text", "text": part} for part in message.content]
        )
        sent: dict[str, Any] = {"role": message.role, "content": content}
        if message.name is not None:
            sent["name"] = message.name
        messages.append(sent)
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
    }
    request.update({name: value for name, value in optional.items() if value is not None})
    return request


def _to_generation(completion: Any, profile: GeneratorProfile) -> Generation:
    """Validate by hand: without strict validation the SDK returns text or partial objects."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise GenerationFailed("generator's answer is not a chat completion", reason="bad-body")
    content = getattr(getattr(choices[0], "message", None), "content", None)
    if not isinstance(content, str) or not content.strip():
        finish = str(getattr(choices[0], "finish_reason", None))[:40]
        raise GenerationFailed(
            f"generator sent empty content (finish_reason={finish})", reason="empty"
        )
    model = getattr(completion, "model", None)
    usage = getattr(completion, "usage", None)
    return Generation(
        content=content,
        model=model if isinstance(model, str) and model else profile.model,
        prompt_tokens=_count(getattr(usage, "prompt_tokens", None)),
        completion_tokens=_count(getattr(usage, "completion_tokens", None)),
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None
