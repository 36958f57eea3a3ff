"""Tracing off (no OTLP endpoint): nothing is made per request, and the app has no tracing
middleware. The spans themselves are checked on the wire by tests/e2e/test_tracing.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from genkeep.api.app import create_app
from genkeep.api.request_id import RequestId
from genkeep.api.server_spans import ServerSpans
from genkeep.config import Settings
from genkeep.telemetry import tracing
from genkeep.telemetry.messaging import consumer_span, producer_span

OTEL = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture(autouse=True)
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL:
        monkeypatch.delenv(name, raising=False)


def test_without_an_endpoint_no_tracer_and_every_helper_makes_nothing() -> None:
    assert not tracing.wanted()
    assert tracing.configure() is None and tracing.tracer() is None
    # One shared do-nothing context manager: no span, context or carrier per call.
    assert tracing.span("a") is tracing.span("b") is producer_span("kind")
    with tracing.span("a") as made:
        assert made is None
    with consumer_span("kind", "id", submitted=None, previous_attempt=None, attempt=1) as made:
        assert made is None
    assert tracing.carrier() is None
    assert tracing.current_span() is None


def test_the_app_has_no_tracing_middleware_and_ids_come_from_headers(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, _env_file=None))
    classes: list[object] = [m.cls for m in app.user_middleware]
    assert ServerSpans not in classes
    [request_id] = [m for m in app.user_middleware if m.cls is RequestId]  # type: ignore[comparison-overlap]
    assert request_id.kwargs == {"from_span": False}


@pytest.mark.parametrize(
    ("variables", "wanted"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({}, False),
    ],
)
def test_the_standard_variables_turn_it_on(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], wanted: bool
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert tracing.wanted() is wanted
