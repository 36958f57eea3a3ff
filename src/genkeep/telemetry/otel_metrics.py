"""The GenAI client metrics over OTLP, when an OTLP metrics endpoint is set (else nothing)."""

from __future__ import annotations

import atexit
from typing import Any

from opentelemetry.metrics import Histogram

from genkeep.config import otel_metrics_endpoint
from genkeep.telemetry.metrics import GENAI_DURATION_BUCKETS, GENAI_TOKEN_BUCKETS


class _State:
    configured = False
    tokens: Histogram | None = None
    duration: Histogram | None = None


def configure() -> bool:
    """Start the OTLP metrics pipeline once per process when an endpoint is set."""
    if _State.configured:
        return _State.tokens is not None
    _State.configured = True
    if otel_metrics_endpoint() is None:
        return False
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    from genkeep import __version__
    from genkeep.config import otel_service_name_set

    resource = Resource.create({"service.version": __version__})
    if not otel_service_name_set():
        resource = resource.merge(Resource({"service.name": "genkeep"}))
    provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    metrics.set_meter_provider(provider)
    atexit.register(provider.shutdown)
    meter = provider.get_meter("genkeep", __version__)
    _State.tokens = meter.create_histogram(
        "gen_ai.client.token.usage",
        unit="{token}",
        description="Number of input and output tokens used.",
        explicit_bucket_boundaries_advisory=list(map(float, GENAI_TOKEN_BUCKETS)),
    )
    _State.duration = meter.create_histogram(
        "gen_ai.client.operation.duration",
        unit="s",
        description="GenAI operation duration.",
        explicit_bucket_boundaries_advisory=list(GENAI_DURATION_BUCKETS),
    )
    return True


def record_model_call(
    attributes: dict[str, Any],
    response_model: str | None,
    seconds: float,
    error: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
) -> None:
    """Record one model call (nothing when OTLP metrics are off)."""
    if _State.duration is None or _State.tokens is None:
        return
    labels = {
        name: attributes[name]
        for name in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")
    }
    if response_model:
        labels["gen_ai.response.model"] = response_model
    if "server.address" in attributes:
        labels["server.address"] = attributes["server.address"]
    timed = {**labels, "error.type": error} if error else labels
    _State.duration.record(seconds, timed)
    for kind, tokens in (("input", input_tokens), ("output", output_tokens)):
        if tokens is not None:
            _State.tokens.record(tokens, {**labels, "gen_ai.token.type": kind})
