"""Each request's SERVER span, by OpenTelemetry's ASGI instrumentation wrapped round the
whole app: it continues an incoming ``traceparent`` and covers the hot routes, which answer
before FastAPI's router (and its own telemetry hooks) ever sees the request."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import Tracer
from starlette.routing import Match

# Probes and scrapes would be most of the spans and tell nothing.
UNTRACED = "/healthz$,/readyz$,/metrics$"


def install_server_spans(app: FastAPI, tracer: Tracer) -> None:
    """Add the tracing middleware, outermost (call it after every other middleware)."""
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer=tracer,
        # The request metrics are genkeep's own Prometheus histograms already.
        meter=NoOpMeterProvider().get_meter("genkeep.server"),
        excluded_urls=UNTRACED,
        exclude_spans=["receive", "send"],
        default_span_details=SpanNames(app).details,
    )


class SpanNames:
    """``{method} {route}`` by the route's template (``/v1/tasks/{task_id}``), never the raw
    path: one span name per route, whatever ids a client sends."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._known: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    def details(self, scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        method, path = scope.get("method", "HTTP"), scope.get("path", "")
        found = self._known.get((method, path))
        if found is not None:
            return found
        route = self._template(scope)
        details: tuple[str, dict[str, Any]] = (
            (f"{method} {route}", {"http.route": route}) if route else (method, {})
        )
        # Only a route without parameters names itself by its path: safe to remember.
        if route == path and len(self._known) < 256:
            self._known[(method, path)] = details
        return details

    def _template(self, scope: dict[str, Any]) -> str | None:
        for route in self.app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return getattr(route, "path_format", None) or getattr(route, "path", None)
        return None
