"""The spans generate once writes: a flight's ``genkeep.generate`` and its model call (the
GenAI CLIENT span). A hit or a request that joined a flight makes neither: its own span (the
SERVER span, say) is told how it was answered, and a joiner links to the flight's span."""

from __future__ import annotations

from collections.abc import Coroutine
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, SpanKind

from genkeep.config import GeneratorProfile
from genkeep.generate.chat_key import ChatCall
from genkeep.generate.outcome import Outcome
from genkeep.telemetry import genai, tracing

# A profile's backend as the GenAI conventions name its provider.
PROVIDERS = {"openai": "openai", "builtin": "genkeep"}


def start_generation(profile_name: str, model: str) -> Span | None:
    """The span of one flight (a miss's claim, generation and commit), a child of the
    request that opened it; None while tracing is off."""
    tracer = tracing.tracer()
    if tracer is None:
        return None
    attributes = {"genkeep.profile": profile_name, "gen_ai.request.model": model}
    return tracer.start_span("genkeep.generate", attributes=attributes)


async def traced_flight(span: Span, flight: Coroutine[Any, Any, Outcome]) -> Outcome:
    """Run ``flight`` under its span (the model call becomes its child) and end it."""
    with trace.use_span(span, end_on_exit=True):
        outcome = await flight
        _describe(span, outcome)
        return outcome


def describe_outcome(outcome: Outcome) -> None:
    """Say on the request's span how it was answered: a hit, coalesced, or generated (a
    hit makes no span of its own: it is most requests, and a span is most of a hit's cost)."""
    span = tracing.current_span()
    if span is not None:
        _describe(span, outcome)


def _describe(span: Span, outcome: Outcome) -> None:
    span.set_attributes(
        {
            "genkeep.cache.hit": outcome.cached,
            "genkeep.coalesced": outcome.coalesced,
            "genkeep.result.id": outcome.result_id or "",
            "genkeep.prompt.id": outcome.prompt_id or "",
        }
    )


def link_leader(leader: SpanContext | None) -> None:
    """A request that joined another's flight links to that flight's span: in this
    process, or in another (the traceparent stored with the prompt's claim)."""
    span = tracing.current_span() if leader is not None else None
    if span is not None and leader is not None:
        span.add_link(leader, {"genkeep.link": "leader generation"})


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
                "content": m.content if isinstance(m.content, str | None) else list(m.content),
            }
            for m in call.messages
        ],
    )
