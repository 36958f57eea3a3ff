"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from genkeep import __version__
from genkeep.api import openai_errors, problems
from genkeep.api.failures import FailureBoundary
from genkeep.api.guard import BodyLimit
from genkeep.api.hot import HotPaths
from genkeep.api.openapi import install_docs
from genkeep.api.request_id import RequestId
from genkeep.api.routes import (
    artifacts,
    blobs,
    chat,
    deletions,
    embeddings,
    export,
    generate,
    health,
    jobs,
    models,
    owner,
    prompts,
    run_events,
    runs,
    tasks,
    usage,
)
from genkeep.api.server_spans import ServerSpans
from genkeep.config import Settings, load_settings
from genkeep.console import install as install_console
from genkeep.extract.manager import RunManager
from genkeep.services import Services, close_services, open_services
from genkeep.telemetry import tracing

log = logging.getLogger(__name__)

NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
# Routes are matched in this order, one by one: /v1/generate and /v1/chat/completions (the
# cache hits, most of the traffic) before them all (their modules' ``install``).
ROUTERS = (
    models,
    prompts,
    export,
    jobs,
    tasks,
    artifacts,
    runs,
    run_events,
    blobs,
    health,
    owner,
    deletions,
    usage,
)


def attach(app: FastAPI, services: Services) -> None:
    """Make ``services`` what the routes of ``app`` use."""
    app.state.services = services
    app.state.blob_store = services.blobs


def create_app(settings: Settings | None = None, *, hot_routes: bool = True) -> FastAPI:
    """The app; ``hot_routes=False`` serves the hot routes with FastAPI's own handler."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await open_services(settings)
        attach(app, services)
        # Extraction runs started over HTTP live here; leaving stops each at a batch boundary.
        manager = RunManager()
        app.state.run_manager = await manager.__aenter__()
        worker_task = None
        worker = None
        if settings.serve_worker:
            from genkeep.ops.sweep import sweep_if_due
            from genkeep.worker.runner import Worker

            worker = Worker(services, housekeeping=lambda: sweep_if_due(services))
            worker_task = asyncio.create_task(worker.run(), name="genkeep-worker")
        # What start-up built lives as long as the process: out of the cyclic collector's
        # way, whose full passes over it (tens of ms) made the tail of request latency.
        gc.freeze()
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(Exception):
                    await worker_task
            await manager.__aexit__(None, None, None)
            await close_services(services)

    app = FastAPI(
        title="genkeep",
        version=__version__,
        summary="Generate once, keep it durable: read-first generation, jobs, tasks and artifacts.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # genkeep exports Prometheus metrics (/metrics); FastAPI's native OpenTelemetry
        # hooks would only ask the global providers, on every request, whether to record.
        telemetry=NO_OPENTELEMETRY,
    )
    problems.install(app, retry_after_s=settings.retry_after_s)
    openai_errors.install(app)
    generate.install(app, hot=hot_routes)  # first, and outside the routers
    chat.install(app, hot=hot_routes)
    embeddings.install(app, hot=hot_routes)
    # Added last runs first: the boundary sees every failure, the cap every body, and the
    # hot routes are reached inside both.
    if hot_routes:
        app.add_middleware(HotPaths, router=app.router)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(FailureBoundary, retry_after_s=settings.retry_after_s)
    tracer = tracing.configure()
    app.add_middleware(RequestId, from_span=tracer is not None)  # the boundary's answers too
    spans = tracing.lean_spans()
    if spans is not None:
        # Outermost: every request, the hot routes' included, gets its SERVER span first.
        app.add_middleware(ServerSpans, spans=spans)
    for module in ROUTERS:
        app.include_router(module.router)
    install_docs(app, settings)
    install_console(app)
    return app
