"""Prometheus metrics; multi-process safe when ``PROMETHEUS_MULTIPROC_DIR`` is set by ``serve``."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

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


def exposition() -> tuple[bytes, str]:
    """The metrics page, merged across server processes in multi-process mode."""
    if prometheus_multiproc_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
