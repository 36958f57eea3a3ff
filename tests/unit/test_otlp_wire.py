"""genkeep's OTLP span encoding writes the very bytes the SDK's encoder writes, for spans of
every shape genkeep makes (and some it does not): the receiver in tests/support/otlp.py then
decodes them on the wire in tests/e2e/test_tracing.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from genkeep.telemetry.otlp_wire import WireSpanExporter, encode


class Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def made(resource: Resource) -> list[ReadableSpan]:
    kept = Kept()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(kept))
    genkeep = provider.get_tracer("genkeep", "1.2.3")
    other = provider.get_tracer("opentelemetry.instrumentation.httpx", schema_url="https://x/1")
    remote = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    attributes: dict[str, Any] = {
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "genkeep.cache.hit": True,
        "genkeep.coalesced": False,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.response.finish_reasons": ("length",),
        "gen_ai.request.stop_sequences": ["END", "ÉTÉ ☃"],
        "genkeep.attempt": -3,
        "big": 2**40,
        "bools": [True, False],
        "floats": [1.5, -0.0],
        "long": "x" * 300,
    }
    with genkeep.start_as_current_span(
        "POST /v1/chat/completions",
        set_span_in_context(NonRecordingSpan(remote)),
        SpanKind.SERVER,
        attributes,
    ) as server:
        server.add_event("exception", {"exception.type": "Boom"}, timestamp=123)
        server.add_event("bare")
        with genkeep.start_as_current_span("genkeep.generate") as generation:
            generation.set_status(StatusCode.ERROR, "upstream said 500 ☃")
            with other.start_as_current_span("POST", kind=SpanKind.CLIENT):
                pass
        for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
            genkeep.start_span("send", kind=kind, links=[Link(remote, {"genkeep.link": "p"})]).end()
        genkeep.start_span("linked", links=[Link(generation.get_span_context())]).end()
        ok = genkeep.start_span("ok")
        ok.set_status(StatusCode.OK)
        ok.end()
    genkeep.start_span("", attributes={}).end()
    return kept.spans


@pytest.mark.parametrize(
    "resource",
    [
        Resource.create({"service.name": "genkeep", "process.pid": 4242}),
        Resource({}, schema_url="https://opentelemetry.io/schemas/1.30.0"),
    ],
)
def test_the_bytes_are_the_sdk_encoders(resource: Resource) -> None:
    spans = made(resource)
    assert len(spans) >= 8
    ours = encode(spans)
    assert ours == encode_spans(spans).SerializeToString()
    assert ExportTraceServiceRequest.FromString(ours) == encode_spans(spans)


def test_two_resources_in_one_batch_stay_apart() -> None:
    spans = made(Resource({"service.name": "a"})) + made(Resource({"service.name": "b"}))
    assert encode(spans) == encode_spans(spans).SerializeToString()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_the_exporter_posts_them_and_falls_back_to_the_sdk_for_what_it_cannot_write(
    receiver: tuple[str, list[bytes]],
) -> None:
    url, bodies = receiver
    spans = made(Resource({"service.name": "genkeep"}))
    exporter = WireSpanExporter(endpoint=url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert bodies == [encode(spans)]
    # An int beyond int64: the SDK's encoder logs it and leaves that attribute out.
    provider = TracerProvider()
    kept = Kept()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    provider.get_tracer("genkeep").start_span("huge", attributes={"n": 2**70, "ok": 1}).end()
    assert exporter.export(kept.spans) is SpanExportResult.SUCCESS
    [span] = ExportTraceServiceRequest.FromString(bodies[1]).resource_spans[0].scope_spans[0].spans
    assert [a.key for a in span.attributes] == ["ok"]
    exporter.shutdown()
