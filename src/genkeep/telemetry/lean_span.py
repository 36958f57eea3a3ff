"""A recording span kept as plain fields, ended into the SDK's span processors.

The SDK's span guards every call with a lock and cleans every attribute into a bounded map:
right for spans anyone may touch from any thread, and most of what a span costs a cache hit
(``benchmarks/generate_bench.py --tracing``). A request's SERVER span is touched by its own
task only, and its attributes are genkeep's (str, int, bool). ``LeanSpans`` starts it as the
SDK's tracer would (its sampler, so ``OTEL_TRACES_SAMPLER`` holds, its id generator, resource
and scope), and at its end hands itself, an SDK ``ReadableSpan`` that no longer changes, to the
same processors, as the SDK's span hands its snapshot: the batch processor and the exporter
see what an SDK span would have given them. It is an ``opentelemetry.trace.Span``: made
current, it is the parent of the SDK's spans started under it, and
``trace.get_current_span()`` finds it to set attributes or add links.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from time import time_ns
from types import TracebackType
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, Tracer, sampling
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AnyValue, Attributes

# The four flag bytes a span can get (sampled or not, random trace id or not), made once.
_FLAGS = {(s, r): TraceFlags(s | r) for s in (0, TraceFlags.SAMPLED) for r in (0, 2)}
_UNSET = Status(StatusCode.UNSET)
_ROOT = trace.INVALID_SPAN_CONTEXT


class LeanSpans:
    """Starts ``LeanSpan``s with what the SDK's ``tracer`` starts its spans with."""

    def __init__(self, tracer: Tracer, scope: InstrumentationScope) -> None:
        self.sampler = tracer.sampler
        # The SDK's default sampler (parentbased_always_on): every root, and a parent's
        # choice. Its decision is taken here without the call (a fifth of the span's start and end).
        self.default_sampler = self.sampler is sampling.DEFAULT_ON
        self.ids = tracer.id_generator
        self.random_ids = getattr(self.ids, "is_trace_id_random", lambda: False)()
        self.resource = tracer.resource
        self.processor = tracer.span_processor
        self.scope = scope
        limits = SpanLimits()  # what the provider made of OTEL_*_LIMIT, read the same way
        self.most_attributes = limits.max_span_attributes
        self.longest_value = limits.max_span_attribute_length
        self.most_events = limits.max_events
        self.most_links = limits.max_links

    def start(
        self, name: str, parent: Context | None, kind: SpanKind, attributes: dict[str, AnyValue]
    ) -> trace.Span:
        """A span under ``parent`` (a root without one: whatever is current is not asked), or,
        when the sampler drops it, the ``NonRecordingSpan`` the SDK would give (its context
        still goes downstream)."""
        parent_context = (
            _ROOT if parent is None else trace.get_current_span(parent).get_span_context()
        )
        if parent_context.is_valid:
            trace_id = parent_context.trace_id
            random_id = parent_context.trace_flags.random_trace_id
            parent_span: SpanContext | None = parent_context
        else:
            trace_id = self.ids.generate_trace_id()
            random_id = self.random_ids
            parent_span = None
        if self.default_sampler:
            sampled = parent_span is None or parent_span.trace_flags.sampled
            trace_state = None if parent_span is None else parent_span.trace_state
        else:
            found = self.sampler.should_sample(parent, trace_id, name, kind, attributes)
            if found.decision is Decision.RECORD_ONLY:
                sampled = False
            elif found.decision is Decision.DROP:
                sampled = None  # not recorded
            else:
                sampled = True
            trace_state = found.trace_state
            attributes = dict(found.attributes)  # those given, and what the sampler adds
        flags = _FLAGS[TraceFlags.SAMPLED if sampled else 0, 2 if random_id else 0]
        context = SpanContext(trace_id, self.ids.generate_span_id(), False, flags, trace_state)
        if sampled is None or (self.default_sampler and not sampled):
            return trace.NonRecordingSpan(context)
        span = LeanSpan(name, context, parent_span, kind, attributes, self)
        self.processor.on_start(span, parent)  # type: ignore[arg-type]
        return span


class LeanSpan(trace.Span, ReadableSpan):
    """One recording span, for one task: no lock, attributes kept as given. Ended, it is its
    own ``ReadableSpan``: every change is refused from then on."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, AnyValue],
        source: LeanSpans,
    ) -> None:
        # ReadableSpan's fields, set here rather than by its __init__ (one call less a span).
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: Any = attributes
        self._events: Any = ()  # a list once one is added
        self._links: Any = ()
        self._status = _UNSET
        self._start_time = time_ns()
        self._end_time: int | None = None
        self._resource = source.resource
        self._instrumentation_scope = source.scope
        self._instrumentation_info = None
        self._source = source

    def get_span_context(self) -> SpanContext:
        return cast(SpanContext, self._context)  # set at start, never None

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, AnyValue]) -> None:
        if self._end_time is None:
            self._attributes.update(attributes)

    def set_attribute(self, key: str, value: AnyValue) -> None:
        if self._end_time is None:
            self._attributes[key] = value

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        # The SDK's rule: a link to nothing is kept only for what its attributes say.
        if self._end_time is None and (context.is_valid or attributes):
            self._links = [*self._links, Link(context, attributes)]

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is None:
            self._events = [*self._events, Event(name, attributes, timestamp)]

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET changes nothing.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

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
        if exc_val is not None and self._end_time is None:  # as the SDK's span does
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time_ns()
        source = self._source
        # Bounded as the SDK's span would have been, when a limit bites
        # (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, ...).
        most, longest = source.most_attributes, source.longest_value
        if longest is not None or (most is not None and len(self._attributes) > most):
            self._attributes = BoundedAttributes(
                most, self._attributes, immutable=True, max_value_len=longest
            )
        if source.most_events is not None and len(self._events) > source.most_events:
            self._events = BoundedList.from_seq(source.most_events, self._events)
        if source.most_links is not None and len(self._links) > source.most_links:
            self._links = BoundedList.from_seq(source.most_links, self._links)
        source.processor.on_end(self)
