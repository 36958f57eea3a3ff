"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from genkeep.api.deps import ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.db.migrate import ensure_current
from genkeep.errors import GenkeepError
from genkeep.telemetry.metrics import exposition, tasks_by_status

log = logging.getLogger(__name__)
router = APIRouter(route_class=GuardedRoute, tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


_READINESS = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"enum": ["ready", "unready"]}, "reason": {"type": "string"}},
}


@router.get(
    "/readyz",
    responses={
        200: {"content": {"application/json": {"schema": _READINESS}}},
        503: {
            "description": "The database does not answer or its schema is not current.",
            "content": {"application/json": {"schema": _READINESS}},
        },
    },
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """The database answers and its schema is current."""
    try:
        await services.database.driver.ping()
        await ensure_current(services.database)
    except GenkeepError as exc:
        return JSONResponse({"status": "unready", "reason": exc.detail}, status_code=503)
    except Exception as exc:
        return JSONResponse({"status": "unready", "reason": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition.", "content": {"text/plain": {}}}},
)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text: this server's counters, and the task queue's depth by status read
    from the database now (left out while the database is unreachable)."""
    snapshot = []
    try:
        snapshot.append(tasks_by_status(await services.tasks.count_by_status()))
    except (SQLAlchemyError, OSError, GenkeepError) as exc:
        # The counters are what an operator reads during an outage: still serve them.
        log.warning("/metrics without genkeep_tasks: the database did not answer (%s)", exc)
    body, content_type = exposition(snapshot)
    return Response(body, media_type=content_type)
