"""The queue's spans, as the OpenTelemetry messaging conventions name them: a PRODUCER span
where work is submitted (its traceparent stored with the work), a CONSUMER span where a
worker processes it, continuing that trace even on another machine or after a takeover."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry.trace import Span, SpanKind

from genkeep.telemetry import tracing

SYSTEM = "genkeep"


def _attributes(operation: str, destination: str, kind: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        "genkeep.task.kind": kind,
    }


def producer_span(kind: str, destination: str = "tasks") -> AbstractContextManager[Span | None]:
    """The span of one submission; ``tracing.carrier()`` inside it is what to store."""
    return tracing.span(
        f"send {destination}", SpanKind.PRODUCER, _attributes("send", destination, kind)
    )


@contextmanager
def consumer_span(
    kind: str,
    message_id: str,
    *,
    submitted: str | None,
    previous_attempt: str | None,
    attempt: int,
    destination: str = "tasks",
    start_time: int | None = None,
    worker_id: str | None = None,
) -> Iterator[Span | None]:
    """The span of one attempt at a piece of work, a child of its submission's span; a
    later attempt links to the one before it (a crash, a lease expiry, a retry)."""
    if tracing.tracer() is None:
        yield None
        return
    attributes = _attributes("process", destination, kind)
    attributes["messaging.message.id"] = message_id
    attributes["genkeep.attempt"] = attempt
    if worker_id:
        attributes["genkeep.worker.id"] = worker_id
    links = tracing.link_to(previous_attempt, **{"genkeep.link": "previous attempt"})
    with tracing.detached_span(
        f"process {destination}",
        SpanKind.CONSUMER,
        attributes,
        parent=submitted,
        links=links,
        start_time=start_time,
    ) as span:
        yield span


def claim_span(started_ns: int, ended_ns: int, worker_id: str) -> None:
    """The claim that handed the current attempt its task, recorded after the fact: a claim
    that found nothing makes no span (an idle worker's polls would be noise)."""
    found = tracing.tracer()
    if found is None:
        return
    span = found.start_span(
        "claim tasks",
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "receive",
            "messaging.destination.name": "tasks",
            "genkeep.worker.id": worker_id,
        },
        start_time=started_ns,
    )
    span.end(end_time=ended_ns)
