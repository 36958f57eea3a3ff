"""genkeep's OTLP span encoding is the SDK's: the same ExportTraceServiceRequest for the same
spans (attributes of every type, events, links, status, remote parents, trace state, scopes),
and the exporter that uses it sends what a receiver decodes."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.util.types import Attributes

from genkeep.telemetry.otlp_encoding import encode_spans
from genkeep.telemetry.span_export import SpanExporter
from tests.support.otlp import OtlpReceiver

REMOTE = SpanContext(
    0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("v", "1")])
)


def made_spans() -> list[ReadableSpan]:
    """Spans as the SDK makes them, each feature the encoders handle used once at least."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "t", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("genkeep", "1.0")
    other = provider.get_tracer("other", None, schema_url="https://opentelemetry.io/schemas/1")
    attributes: dict[str, Any] = {
        "s": "x",
        "i": 7,
        "f": 0.5,
        "b": False,
        "strings": ["a", "b"],
        "ints": (1, 2),
        "empty": [],
    }
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes=attributes) as root:
        root.add_event("ev", {"k": "v"})
        root.add_link(REMOTE, {"genkeep.link": "leader generation"})
        root.set_status(StatusCode.ERROR, "broken")
        with other.start_as_current_span("child", kind=SpanKind.CLIENT):
            pass
    with tracer.start_as_current_span(
        "remote child", set_span_in_context(NonRecordingSpan(REMOTE))
    ) as remote:
        remote.set_status(StatusCode.OK)
    return list(memory.get_finished_spans())


def test_the_same_request_as_the_sdks_encoder() -> None:
    spans = made_spans()
    ours = encode_spans(spans)
    assert ours == sdk_encode(spans)
    assert len(ours.resource_spans) == 1
    # The child ends first: its scope first, then genkeep's two spans.
    assert [len(s.spans) for s in ours.resource_spans[0].scope_spans] == [1, 2]


def test_values_the_sdks_span_would_have_refused_are_encoded_or_skipped_as_by_the_sdk(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A ReadableSpan made directly keeps what it is given: a mapping, bytes, None, and an
    # object no encoder can write (left out, with a log).
    [span] = made_spans()[:1]
    odd = ReadableSpan(
        "odd",
        span.context,
        resource=span.resource,
        attributes=cast(
            Attributes,
            {"m": {"a": [1, "b"]}, "by": b"\x01", "none": None, "bad": object(), "ok": 1},
        ),
        instrumentation_scope=span.instrumentation_scope,
    )
    with caplog.at_level(logging.ERROR):
        ours = encode_spans([odd])
    assert ours == sdk_encode([odd])
    encoded = ours.resource_spans[0].scope_spans[0].spans[0]
    assert [a.key for a in encoded.attributes] == ["m", "by", "none", "ok"]
    assert "Failed to encode key bad" in caplog.text


def test_spans_of_two_resources_are_grouped_apart() -> None:
    spans = made_spans()
    other = ReadableSpan("elsewhere", spans[0].context, resource=Resource({"service.name": "u"}))
    ours = encode_spans([spans[0], other, spans[1]])
    assert ours == sdk_encode([spans[0], other, spans[1]])


def test_the_exporter_sends_the_encoded_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    spans = made_spans()
    with OtlpReceiver() as receiver:
        for name, value in receiver.env().items():
            monkeypatch.setenv(name, value)
        exporter = SpanExporter()
        assert exporter.fast  # the installed SDK's exporter: genkeep's encoder is used
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        received = receiver.wait_for(lambda s: len(s) == 3)
    assert sorted(s.name for s in received) == ["child", "remote child", "root"]
    [root] = [s for s in received if s.name == "root"]
    assert root.kind == "SERVER" and root.attributes["strings"] == ["a", "b"]
    exporter.shutdown()  # type: ignore[no-untyped-call]
