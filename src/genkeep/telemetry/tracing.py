"""OpenTelemetry tracing: off until an OTLP endpoint is set, then one SDK per process.

``configure`` starts the SDK once (``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` set; the SDK reads
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` and its other variables itself). Until
then ``tracer()`` is None and every helper here returns at once, allocating nothing: a
process with tracing off creates no span, context or carrier per request.

Work handed to another process carries a W3C ``traceparent`` stored with it (I18):
``carrier()`` makes it, ``parent_of()`` and ``link_to()`` read it back.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from genkeep.config import otel_service_name_set, otel_traces_endpoint

if TYPE_CHECKING:
    from genkeep.telemetry.lean_span import LeanSpans

log = logging.getLogger(__name__)

_NOTHING: AbstractContextManager[None] = nullcontext()
_PROPAGATOR = TraceContextTextMapPropagator()
_SCOPE = "genkeep"


class _State:
    tracer: Tracer | None = None
    lean: LeanSpans | None = None
    configured = False
    shutdown: Any = None


def wanted() -> bool:
    """Whether this process is to trace (an OTLP endpoint is set)."""
    return otel_traces_endpoint() is not None


def configure() -> Tracer | None:
    """Start the SDK once per process when an endpoint is set; the tracer, or None."""
    if _State.configured:
        return _State.tracer
    _State.configured = True
    if not wanted():
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Tracer as SdkTracer
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from genkeep import __version__
    from genkeep.telemetry.lean_span import LeanSpans
    from genkeep.telemetry.span_export import SpanExporter

    # The process too: a command's helpers and a server's workers share a service name.
    resource = Resource.create({"service.version": __version__, "process.pid": os.getpid()})
    if not otel_service_name_set():
        resource = resource.merge(Resource({"service.name": "genkeep"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(SpanExporter()))
    trace.set_tracer_provider(provider)
    _State.tracer = provider.get_tracer(_SCOPE, __version__)
    # The SDK provider's tracer is the SDK's (typed as the API's).
    sdk_tracer = cast(SdkTracer, _State.tracer)
    _State.lean = LeanSpans(sdk_tracer, InstrumentationScope(_SCOPE, __version__))
    _instrument_http_clients(provider)
    _State.shutdown = provider.shutdown
    # Spans still queued at exit are sent (a CLI command ends before the batch delay).
    atexit.register(shutdown)
    return _State.tracer


def _instrument_http_clients(provider: Any) -> None:
    """httpx (the OpenAI SDK's client) by its maintained instrumentation: each upstream
    request is an HTTP CLIENT span under the model call's, and carries the ``traceparent``
    to an upstream that traces too (vLLM, a gateway). Only misses call upstream: a hit pays
    nothing for it. Clients made after this (the generators, built next) are covered."""
    try:
        from opentelemetry.instrumentation import httpx as instrumentation
    except ImportError:  # an install without it still traces everything else
        return
    # The OpenAI SDK's client is httpx's or, in newer SDKs, its fork httpx2's: both.
    for name in ("HTTPXClientInstrumentor", "HTTPX2ClientInstrumentor"):
        instrumentor = getattr(instrumentation, name, None)
        if instrumentor is not None:
            try:
                instrumentor().instrument(tracer_provider=provider)
            except ModuleNotFoundError:  # that client is not installed
                continue


def shutdown() -> None:
    """Flush and stop the exporter (idempotent)."""
    stop, _State.shutdown = _State.shutdown, None
    if stop is not None:
        try:
            stop()
        except Exception:  # an unreachable collector must not fail a shutdown
            log.warning("could not flush the last spans", exc_info=True)


def flush() -> None:
    """Send the spans ended so far (a process about to stop, or a command's end)."""
    provider = trace.get_tracer_provider() if _State.tracer is not None else None
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        try:
            force_flush(5000)
        except Exception:
            log.warning("could not flush spans", exc_info=True)


def tracer() -> Tracer | None:
    """The process's tracer, or None while tracing is off."""
    return _State.tracer


def lean_spans() -> LeanSpans | None:
    """The starter of the requests' SERVER spans (``LeanSpan``), or None while tracing is off."""
    return _State.lean


def span(
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str | None = None,
    links: Sequence[Link] = (),
    start_time: int | None = None,
) -> AbstractContextManager[Span | None]:
    """A current span (None, and nothing made, while tracing is off). ``parent`` is a
    stored ``traceparent`` to continue instead of the current context."""
    found = _State.tracer
    if found is None:
        return _NOTHING
    context = parent_of(parent) if parent is not None else None
    return found.start_as_current_span(
        name, context, kind, attributes, links, start_time=start_time
    )


@contextmanager
def detached_span(
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str | None = None,
    links: Sequence[Link] = (),
    start_time: int | None = None,
) -> Iterator[Span | None]:
    """``span`` made current in a fresh context: work that outlives the request that
    started it (a claimed task) is not a child of whatever was current."""
    token = otel_context.attach(otel_context.Context())
    try:
        with span(
            name, kind, attributes, parent=parent, links=links, start_time=start_time
        ) as made:
            yield made
    finally:
        otel_context.detach(token)


def carrier() -> str | None:
    """The current span's ``traceparent``, to store with work another process picks up."""
    if _State.tracer is None:
        return None
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers)
    return headers.get("traceparent")


def parent_of(traceparent: str | None) -> otel_context.Context | None:
    """The context a stored ``traceparent`` names (None when absent or malformed)."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The span a stored ``traceparent`` names, for a link."""
    context = parent_of(traceparent)
    return None if context is None else trace.get_current_span(context).get_span_context()


def link_to(traceparent: str | None, **attributes: Any) -> list[Link]:
    """A link to the span a stored ``traceparent`` names; none when there is none."""
    found = span_context_of(traceparent)
    return [] if found is None else [Link(found, attributes or None)]


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or None outside a valid span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def current_span() -> Span | None:
    """The current recording span, or None (tracing off, or nothing being recorded)."""
    if _State.tracer is None:
        return None
    found = trace.get_current_span()
    return found if found.is_recording() else None
