"""A model call as the OpenTelemetry GenAI conventions name it: one CLIENT span
``{gen_ai.operation.name} {gen_ai.request.model}`` and the two ``gen_ai.client.*`` metrics.

The metrics are always on ``/metrics`` (Prometheus) and, with an OTLP metrics endpoint set,
exported over OTLP as well. Message content goes on a span only when the operator opted in
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span, SpanKind, StatusCode

from genkeep.config import otel_capture_content
from genkeep.core.generation import Generation
from genkeep.telemetry import otel_metrics, tracing
from genkeep.telemetry.metrics import GENAI_DURATION, GENAI_TOKENS

# Request parameters by their GenAI attribute, as a call names them.
REQUEST_ATTRIBUTES = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "stop": "gen_ai.request.stop_sequences",
}


@dataclass(slots=True)
class ModelCall:
    """What a call reports as it ends: the answer's model, usage and finish reasons."""

    operation: str
    provider: str
    model: str
    span: Span | None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: list[str] = field(default_factory=list)

    def answered(self, generation: Generation) -> None:
        """Report a generator's answer."""
        self.reported(
            model=generation.model,
            input_tokens=generation.prompt_tokens,
            output_tokens=generation.completion_tokens,
            finish_reason=finish_reason_of(generation),
            content=generation.content,
        )

    def reported(
        self,
        *,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        finish_reason: str | None = None,
        content: str | None = None,
    ) -> None:
        self.response_model = model
        self.input_tokens, self.output_tokens = input_tokens, output_tokens
        if finish_reason:
            self.finish_reasons = [finish_reason]
        if self.span is not None and content is not None and otel_capture_content():
            message = {"role": "assistant", "parts": [{"type": "text", "content": content}]}
            if finish_reason:
                message["finish_reason"] = finish_reason
            self.span.set_attribute("gen_ai.output.messages", json.dumps([message]))


def finish_reason_of(generation: Generation) -> str:
    """Why the model stopped: kept in the details only when it is not ``stop`` (the stored
    form leaves the usual answer out), as the API replays it."""
    found = (generation.details or {}).get("finish_reason")
    return found if isinstance(found, str) and found else "stop"


def request_attributes(params: Mapping[str, Any]) -> dict[str, Any]:
    """The GenAI request attributes of the parameters a call sent (unset ones left out)."""
    found: dict[str, Any] = {}
    for name, attribute in REQUEST_ATTRIBUTES.items():
        value = params.get(name)
        if value is None or value == () or value == []:
            continue
        found[attribute] = list(value) if isinstance(value, (list, tuple)) else value
    return found


def describe_input(span: Span, messages: list[dict[str, Any]]) -> None:
    """The messages sent, on the span, only when the operator opted in to content."""
    if otel_capture_content():
        span.set_attribute("gen_ai.input.messages", json.dumps(messages))


@contextmanager
def model_call(
    operation: str,
    provider: str,
    model: str,
    params: Mapping[str, Any] | None = None,
    *,
    messages: list[dict[str, Any]] | None = None,
    server_address: str | None = None,
    kind: SpanKind = SpanKind.CLIENT,
) -> Iterator[ModelCall]:
    """Time one upstream model call under its CLIENT span (when tracing), then record its
    usage and duration."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    if server_address:
        attributes["server.address"] = server_address
    started = time.perf_counter()
    error: str | None = None
    with tracing.span(f"{operation} {model}", kind) as span:
        if span is not None:
            span.set_attributes(attributes)
            if params:
                span.set_attributes(request_attributes(params))
            if messages is not None:
                describe_input(span, messages)
        call = ModelCall(operation, provider, model, span)
        try:
            yield call
        except BaseException as exc:
            error = getattr(exc, "code", None) or type(exc).__qualname__
            if span is not None:
                span.set_attribute("error.type", str(error))
                span.set_status(StatusCode.ERROR, str(exc)[:200])
            raise
        finally:
            _record(call, attributes, time.perf_counter() - started, error)


def _record(call: ModelCall, attributes: dict[str, Any], seconds: float, error: str | None) -> None:
    labels = (call.operation, call.provider, call.model)
    if call.span is not None:
        if call.response_model:
            call.span.set_attribute("gen_ai.response.model", call.response_model)
        if call.input_tokens is not None:
            call.span.set_attribute("gen_ai.usage.input_tokens", call.input_tokens)
        if call.output_tokens is not None:
            call.span.set_attribute("gen_ai.usage.output_tokens", call.output_tokens)
        if call.finish_reasons:
            call.span.set_attribute("gen_ai.response.finish_reasons", call.finish_reasons)
    GENAI_DURATION.labels(*labels, error or "").observe(seconds)
    for kind, tokens in (("input", call.input_tokens), ("output", call.output_tokens)):
        if tokens is not None:
            GENAI_TOKENS.labels(*labels, kind).observe(tokens)
    otel_metrics.record_model_call(
        attributes, call.response_model, seconds, error, call.input_tokens, call.output_tokens
    )
