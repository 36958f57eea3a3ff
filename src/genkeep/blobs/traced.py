"""A span per blob write (tracing on): what an artifact or a run's input cost to store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from opentelemetry.trace import SpanKind

from genkeep.blobs.store import BlobInfo, BlobStore
from genkeep.telemetry import tracing


def trace_writes(store: BlobStore) -> BlobStore:
    """``store`` with its ``put`` and ``put_file`` traced, in place: the same object, so
    what asks which store it is (the local store's signed-URL route) still knows."""
    backend = type(store).__name__
    for name in ("put", "put_file"):
        setattr(store, name, _traced(getattr(store, name), f"blob {name}", backend))
    return store


def _traced(
    write: Callable[..., Awaitable[BlobInfo]], name: str, backend: str
) -> Callable[..., Awaitable[BlobInfo]]:
    @wraps(write)
    async def traced(key: str, *args: Any, **kwargs: Any) -> BlobInfo:
        attributes = {"genkeep.blob.key": key, "genkeep.blob.store": backend}
        kind = SpanKind.INTERNAL if backend == "LocalBlobStore" else SpanKind.CLIENT
        with tracing.span(name, kind, attributes) as span:
            info = await write(key, *args, **kwargs)
            if span is not None:
                span.set_attribute("genkeep.blob.size", info.size)
            return info

    return traced
