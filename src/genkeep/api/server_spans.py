"""Each request's SERVER span, by OpenTelemetry's ASGI instrumentation wrapped round the
whole app: it continues an incoming ``traceparent`` and covers the hot routes, which answer
before FastAPI's router (and its own telemetry hooks) ever sees the request."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Probes and scrapes would be most of the spans and tell nothing.
UNTRACED = "/healthz$,/readyz$,/metrics$"


def install_server_spans(app: FastAPI, tracer: Tracer) -> None:
    """Add the tracing middleware, outermost (call it after every other middleware)."""
    app.add_middleware(RouteNames)
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer=tracer,
        # The request metrics are genkeep's own Prometheus histograms already.
        meter=NoOpMeterProvider().get_meter("genkeep.server"),
        excluded_urls=UNTRACED,
        exclude_spans=["receive", "send"],
        # Named by the method until the route is known (RouteNames): never by the raw
        # path, whose ids would make a span name per task.
        default_span_details=_method_only,
    )


def _method_only(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return str(scope.get("method") or "HTTP"), {}


class RouteNames:
    """ASGI middleware just inside the SERVER span: once the router (or the hot path lookup)
    chose a route, the span is named ``{method} {route}`` (``POST /v1/jobs/{job_id}/tasks``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            # Before the answer goes out: the instrumentation ends the span with it.
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path_format", None)
                span = trace.get_current_span()
                if route is not None and span.is_recording():
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attribute("http.route", route)
            await send(message)

        await self.app(scope, receive, named)
