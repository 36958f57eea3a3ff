"""A recording span kept as plain fields, ended into the SDK's span processors.

The SDK's span guards every call with a lock and cleans every attribute into a bounded map:
right for spans anyone may touch from any thread, and most of what a span costs a cache hit
(``benchmarks/generate_bench.py --tracing``). A request's SERVER span is touched by its own
task only, and its attributes are genkeep's (str, int, bool). ``LeanSpans`` starts it as the
SDK's tracer would (its sampler, so ``OTEL_TRACES_SAMPLER`` holds, its id generator, resource
and scope) and ``LeanSpan.end`` hands an SDK ``ReadableSpan`` to the same processors, so the
batch processor and the exporter see what an SDK span would have given them. It is a
``opentelemetry.trace.Span``: made current, it is the parent of the SDK's spans started
under it, and ``trace.get_current_span()`` finds it to set attributes or add links.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from time import time_ns
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, Tracer
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AnyValue, Attributes

# The four flag bytes a span can get (sampled or not, random trace id or not), made once.
_FLAGS = {(s, r): TraceFlags(s | r) for s in (0, TraceFlags.SAMPLED) for r in (0, 2)}


class LeanSpans:
    """Starts ``LeanSpan``s with what the SDK's ``tracer`` starts its spans with."""

    def __init__(self, tracer: Tracer, scope: InstrumentationScope) -> None:
        self.sampler = tracer.sampler
        self.ids = tracer.id_generator
        self.random_ids = getattr(self.ids, "is_trace_id_random", lambda: False)()
        self.resource = tracer.resource
        self.processor = tracer.span_processor
        self.scope = scope
        self.limits = SpanLimits()  # what the provider made of OTEL_*_LIMIT, read the same way

    def start(
        self, name: str, parent: Context | None, kind: SpanKind, attributes: dict[str, AnyValue]
    ) -> trace.Span:
        """A span under ``parent`` (else the current context), or, when the sampler drops it,
        the ``NonRecordingSpan`` the SDK would give (its context still goes downstream)."""
        parent_context = trace.get_current_span(parent).get_span_context()
        if parent_context.is_valid:
            trace_id = parent_context.trace_id
            random_id = parent_context.trace_flags.random_trace_id
            parent_span: SpanContext | None = parent_context
        else:
            trace_id = self.ids.generate_trace_id()
            random_id = self.random_ids
            parent_span = None
        sampling = self.sampler.should_sample(parent, trace_id, name, kind, attributes)
        decision = sampling.decision
        sampled = decision is Decision.RECORD_AND_SAMPLE
        flags = _FLAGS[TraceFlags.SAMPLED if sampled else 0, 2 if random_id else 0]
        context = SpanContext(
            trace_id, self.ids.generate_span_id(), False, flags, sampling.trace_state
        )
        if decision is Decision.DROP:
            return trace.NonRecordingSpan(context)
        # The sampler's attributes: those given, and whatever it adds.
        span = LeanSpan(name, context, parent_span, kind, dict(sampling.attributes), self)
        self.processor.on_start(span, parent)  # type: ignore[arg-type]
        return span


class LeanSpan(trace.Span):
    """One recording span, for one task: no lock, attributes kept as given."""

    __slots__ = (
        "attributes",
        "context",
        "end_time",
        "events",
        "kind",
        "links",
        "name",
        "parent",
        "source",
        "start_time",
        "status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, AnyValue],
        source: LeanSpans,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.links: list[Link] = []
        self.events: list[Event] = []
        self.status = Status(StatusCode.UNSET)
        self.start_time = time_ns()
        self.end_time: int | None = None
        self.source = source

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attributes(self, attributes: Mapping[str, AnyValue]) -> None:
        if self.end_time is None:
            self.attributes.update(attributes)

    def set_attribute(self, key: str, value: AnyValue) -> None:
        if self.end_time is None:
            self.attributes[key] = value

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        # The SDK's rule: a link to nothing is kept only for what its attributes say.
        if self.end_time is None and (context.is_valid or attributes):
            self.links.append(Link(context, attributes))

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.end_time is None:
            self.events.append(Event(name, attributes, timestamp))

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET changes nothing.
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        recorded: dict[str, Any] = {
            "exception.type": (
                f"{module}.{kind.__qualname__}" if module != "builtins" else kind.__qualname__
            ),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", recorded, timestamp)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self.is_recording():  # as the SDK's span does
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time if end_time is not None else time_ns()
        source = self.source
        self.source.processor.on_end(
            ReadableSpan(
                name=self.name,
                context=self.context,
                parent=self.parent,
                resource=source.resource,
                attributes=_bounded(self.attributes, source.limits),
                events=_capped(self.events, source.limits.max_events),
                links=_capped(self.links, source.limits.max_links),
                kind=self.kind,
                status=self.status,
                start_time=self.start_time,
                end_time=self.end_time,
                instrumentation_scope=source.scope,
            )
        )


def _bounded(attributes: dict[str, AnyValue], limits: SpanLimits) -> Attributes:
    """The attributes as they are, or bounded as the SDK's span would have when a limit
    (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``, ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``) bites."""
    most, longest = limits.max_span_attributes, limits.max_span_attribute_length
    if longest is None and (most is None or len(attributes) <= most):
        return attributes
    return BoundedAttributes(most, attributes, immutable=True, max_value_len=longest)


def _capped(found: list[Any], most: int | None) -> Any:
    return found if most is None or len(found) <= most else BoundedList.from_seq(most, found)
