"""Each request's SERVER span, made by an ASGI middleware round the whole app: it continues an
incoming ``traceparent`` and covers the hot routes, which answer before FastAPI's router (and
its own telemetry hooks) ever sees the request.

Hand-written rather than OpenTelemetry's ASGI instrumentation: that one collected a dozen
attributes through generic hooks and cost about 400 µs of CPU per request, three times a
whole cache hit (``benchmarks/generate_bench.py --tracing``); this one sets the HTTP
conventions' required and recommended attributes and costs a tenth of that. The span is a
``LeanSpan`` (``genkeep.telemetry.lean_span``): the SDK's sampler, ids and exporter, without
the SDK span's locks and attribute cleaning, which were most of what tracing cost a hit.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.api.request_id import TRACE_ID
from genkeep.telemetry.lean_span import LeanSpans
from genkeep.telemetry.tracing import parent_of

# Probes and scrapes would be most of the spans and tell nothing.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


class ServerSpans:
    """ASGI middleware, the outermost: one SERVER span per HTTP request, named
    ``{method} {route}`` once the router (or the hot path lookup) chose the route."""

    def __init__(self, app: ASGIApp, *, spans: LeanSpans) -> None:
        self.app = app
        self.spans = spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        parent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                parent = parent_of(value.decode("latin-1"))
                break
        span = self.spans.start(
            method,
            parent,
            SpanKind.SERVER,
            {
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )

        async def answered(message: Message) -> None:
            # Before the answer goes out: by then the route is chosen.
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path_format", None)
                # One call (one lock, one pass) for what the answer says.
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attributes({"http.route": route, "http.response.status_code": status})
                else:
                    span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                    span.set_attribute("error.type", str(status))
            await send(message)

        # The request's id is the span's trace id (RequestId, next, sends it): read here
        # from the span in hand rather than looked up again in the context.
        scope[TRACE_ID] = format(span.get_span_context().trace_id, "032x")
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, answered)
        except BaseException as exc:
            span.set_status(StatusCode.ERROR)
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            otel_context.detach(token)
            span.end()
