"""Prometheus metrics; multi-process safe when ``PROMETHEUS_MULTIPROC_DIR`` is set by ``serve``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from genkeep.config import prometheus_multiproc_dir

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

GENERATOR_CALLS = Counter(
    "genkeep_generator_calls", "Calls made to a generator backend.", ["profile", "outcome"]
)
CACHE_HITS = Counter("genkeep_cache_hits", "Requests answered from a stored result.", ["profile"])
COALESCED = Counter(
    "genkeep_coalesced_waiters",
    "Requests that waited for another request's generation instead of generating.",
    ["scope"],
)
LEASE_TAKEOVERS = Counter(
    "genkeep_lease_takeovers", "Claims taken over after the holder's lease expired."
)
PERSISTENCE_FAILURES = Counter(
    "genkeep_persistence_failures", "Results whose commit failed after generation.", ["mode"]
)
REQUEST_LATENCY = Histogram(
    "genkeep_generate_seconds",
    "Latency of generate requests by how they were answered.",
    ["outcome"],
    buckets=_LATENCY_BUCKETS,
)
GENERATOR_LATENCY = Histogram(
    "genkeep_generator_seconds",
    "Latency of generator backend calls.",
    ["profile"],
    buckets=_LATENCY_BUCKETS,
)


class _Snapshot(Collector):
    """Gauges read from the database for one scrape: the same in every process, so they
    are not per-process samples to add up like the counters above."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def tasks_by_status(counts: Mapping[str, int]) -> Metric:
    """``genkeep_tasks{status}``: the task queue's depth by status, every owner's tasks."""
    family = GaugeMetricFamily(
        "genkeep_tasks",
        "Tasks in the database by status, counted at scrape time.",
        labels=["status"],
    )
    for status, count in counts.items():
        family.add_metric([status], count)
    return family


def exposition(snapshot: list[Metric] | None = None) -> tuple[bytes, str]:
    """The metrics page, merged across server processes in multi-process mode, followed by
    the ``snapshot`` gauges read from the database for this scrape."""
    if prometheus_multiproc_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    if snapshot:
        read = CollectorRegistry(auto_describe=False)
        read.register(_Snapshot(snapshot))
        body += generate_latest(read)
    return body, CONTENT_TYPE_LATEST


# The OpenTelemetry GenAI client metrics, with the buckets the conventions advise; the same
# names an OTLP-to-Prometheus bridge would give them.
GENAI_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
GENAI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_GENAI_LABELS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
GENAI_TOKENS = Histogram(
    "gen_ai_client_token_usage",
    "Tokens used per upstream model call (gen_ai.client.token.usage), by gen_ai_token_type.",
    [*_GENAI_LABELS, "gen_ai_token_type"],
    buckets=GENAI_TOKEN_BUCKETS,
)
GENAI_DURATION = Histogram(
    "gen_ai_client_operation_duration",
    "Duration of upstream model calls (gen_ai.client.operation.duration); error_type is "
    "empty on success.",
    [*_GENAI_LABELS, "error_type"],
    unit="seconds",
    buckets=GENAI_DURATION_BUCKETS,
)

# Cost control (generate.metering): tokens of generator calls, their cost, and what hits saved.
USAGE_TOKENS = Counter(
    "genkeep_usage_tokens", "Tokens of generator calls.", ["profile", "direction"]
)
USAGE_COST = Counter("genkeep_usage_cost_usd", "Cost of generator calls, in USD.", ["profile"])
USAGE_SAVED = Counter("genkeep_usage_saved_usd", "Cost that cache hits saved, in USD.", ["profile"])
LIMITED = Counter("genkeep_limited", "Requests refused by a limit.", ["limit"])
