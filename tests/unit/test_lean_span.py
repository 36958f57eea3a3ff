"""A LeanSpan (the requests' SERVER span) is started and exported as the SDK's span would be:
the provider's sampler, ids, resource and processors; SDK spans started under it are its
children; what is set on it as the current span is on the exported span."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from genkeep.telemetry import tracing
from genkeep.telemetry.lean_span import LeanSpan, LeanSpans
from genkeep.telemetry.otlp_encoding import encode_spans

SCOPE = InstrumentationScope("genkeep", "1.0")


def pipeline(**provider: object) -> tuple[TracerProvider, InMemorySpanExporter, LeanSpans]:
    memory = InMemorySpanExporter()
    made = TracerProvider(resource=Resource.create({"service.name": "t"}), **provider)  # type: ignore[arg-type]
    made.add_span_processor(SimpleSpanProcessor(memory))
    tracer = made.get_tracer(SCOPE.name, SCOPE.version)
    return made, memory, LeanSpans(tracer, SCOPE)  # type: ignore[arg-type]


def request_like(span: trace.Span) -> None:
    """What ServerSpans and a hit do to the SERVER span."""
    span.set_attributes({"http.route": "/v1/generate", "http.response.status_code": 200})
    span.update_name("POST /v1/generate")
    span.add_link(SpanContext(1, 2, True, TraceFlags(1)), {"genkeep.link": "leader generation"})
    span.set_status(StatusCode.ERROR)
    span.set_attribute("error.type", "500")


def test_exported_as_the_sdks_span_with_the_same_calls() -> None:
    provider, memory, lean = pipeline()
    attributes = {"http.request.method": "POST", "url.path": "/v1/generate"}
    made = lean.start("POST", None, SpanKind.SERVER, dict(attributes))
    assert isinstance(made, LeanSpan) and made.is_recording()
    request_like(made)
    made.end()
    sdk = provider.get_tracer(SCOPE.name, SCOPE.version).start_span(
        "POST", None, SpanKind.SERVER, attributes
    )
    request_like(sdk)
    sdk.end()
    ours, theirs = memory.get_finished_spans()
    assert ours.context.trace_flags == theirs.context.trace_flags  # sampled, random id
    # Encoded, they differ only in their ids and times.
    [a, b] = encode_spans([ours, theirs]).resource_spans[0].scope_spans[0].spans
    for field in ("trace_id", "span_id", "start_time_unix_nano", "end_time_unix_nano"):
        a.ClearField(field)
        b.ClearField(field)
    assert a == b
    assert a.name == "POST /v1/generate" and len(a.attributes) == 5 and len(a.links) == 1


def test_it_continues_a_remote_parent_and_is_the_parent_of_sdk_spans() -> None:
    provider, memory, lean = pipeline()
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    span = lean.start("POST", parent, SpanKind.SERVER, {})
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        assert tracing.current_span() is None  # tracing off in this process: nothing asked
        assert trace.get_current_span() is span
        child = provider.get_tracer("x").start_span("genkeep.generate")
        child.end()
    finally:
        otel_context.detach(token)
        span.end()
    made_child, made = memory.get_finished_spans()
    assert made.context.trace_id == 0xABC and made.parent is not None
    assert made.parent.span_id == 0xDEF and made.parent.is_remote
    assert made_child.parent is not None and made_child.parent.span_id == made.context.span_id


@pytest.mark.parametrize(
    "sampled_parent", [None, SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))]
)
def test_the_providers_sampler_decides(sampled_parent: SpanContext | None) -> None:
    # ALWAYS_OFF drops a root; the default (parent-based) follows an unsampled caller.
    _, memory, lean = pipeline(**({"sampler": ALWAYS_OFF} if sampled_parent is None else {}))
    parent = (
        None
        if sampled_parent is None
        else trace.set_span_in_context(NonRecordingSpan(sampled_parent))
    )
    span = lean.start("POST", parent, SpanKind.SERVER, {})
    assert isinstance(span, NonRecordingSpan) and not span.get_span_context().trace_flags.sampled
    request_like(span)
    span.end()
    assert memory.get_finished_spans() == ()


def test_nothing_changes_once_ended_and_the_limits_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    _, memory, lean = pipeline()
    span = lean.start("POST", None, SpanKind.SERVER, {"url.path": "/v1/generate"})
    span.end()
    span.set_attribute("late", 1)
    span.update_name("late")
    span.end()
    [made] = memory.get_finished_spans()
    assert isinstance(made, ReadableSpan) and made.name == "POST"
    assert dict(made.attributes or {}) == {"url.path": "/v1/"}
