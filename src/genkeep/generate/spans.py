"""The spans generate once writes: the generation a request asked for, and the model call
(GenAI CLIENT span) a miss makes; a hit or a coalesced request makes no model call."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from opentelemetry.trace import Span, SpanContext, SpanKind

from genkeep.config import GeneratorProfile
from genkeep.generate.chat_key import ChatCall
from genkeep.generate.outcome import Outcome
from genkeep.telemetry import genai, tracing

# A profile's backend as the GenAI conventions name its provider.
PROVIDERS = {"openai": "openai", "builtin": "genkeep"}


def generation_span(profile_name: str, model: str) -> AbstractContextManager[Span | None]:
    """The span of one generate-once request (None while tracing is off)."""
    return tracing.span(
        "genkeep.generate",
        attributes={"genkeep.profile": profile_name, "gen_ai.request.model": model},
    )


def describe_outcome(span: Span, outcome: Outcome) -> None:
    """Say how the request was answered: a hit, coalesced, or generated here."""
    span.set_attributes(
        {
            "genkeep.cache.hit": outcome.cached,
            "genkeep.coalesced": outcome.coalesced,
            "genkeep.result.id": outcome.result_id or "",
            "genkeep.prompt.id": outcome.prompt_id or "",
        }
    )


def link_leader(leader: SpanContext | None) -> None:
    """A request that joined another's flight links to that request's generation."""
    span = tracing.current_span() if leader is not None else None
    if span is not None and leader is not None:
        span.add_link(leader, {"genkeep.link": "leader generation"})


def current_generation() -> SpanContext | None:
    """The current generation span's context, for the requests that will join its flight."""
    found = tracing.current_span()
    return None if found is None else found.get_span_context()


def model_call(profile: GeneratorProfile, *, chat: bool) -> AbstractContextManager[genai.ModelCall]:
    """The GenAI span and metrics of one generator call under ``profile``."""
    provider = PROVIDERS.get(profile.backend, profile.backend)
    # The offline generator answers in process: a model call, but no remote peer.
    operation = "chat" if chat or profile.backend == "openai" else "text_completion"
    params = {"temperature": profile.temperature, "max_tokens": profile.max_tokens}
    kind = SpanKind.CLIENT if profile.backend != "builtin" else SpanKind.INTERNAL
    return genai.model_call(operation, provider, profile.model, params, kind=kind)


def describe_chat(call: ChatCall) -> None:
    """The chat's request parameters (and, when opted in, its messages) on the model call."""
    span = tracing.current_span()
    if span is None:
        return
    params: dict[str, Any] = {
        "temperature": call.temperature,
        "top_p": call.top_p,
        "max_tokens": call.max_tokens,
        "seed": call.seed,
        "presence_penalty": call.presence_penalty,
        "frequency_penalty": call.frequency_penalty,
        "stop": list(call.stop),
    }
    span.set_attributes(genai.request_attributes(params))
    genai.describe_input(
        span,
        [
            {
                "role": m.role,
                "content": m.content if isinstance(m.content, str) else list(m.content),
            }
            for m in call.messages
        ],
    )
