"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from genkeep.api.deps import ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import RETRY_AFTER_HEADER
from genkeep.db.migrate import ensure_current
from genkeep.errors import GenkeepError
from genkeep.services import Services
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
            "headers": RETRY_AFTER_HEADER,
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
        return _unready(exc.detail, services)
    except Exception as exc:
        reason = (
            "the database is unavailable"
            if services.database.driver.is_unavailable(exc)
            else type(exc).__name__
        )
        return _unready(reason, services)
    return JSONResponse({"status": "ready"})


def _unready(reason: str, services: Services) -> JSONResponse:
    # A load balancer or client polling readiness waits as long as a refused request would.
    headers = {"Retry-After": str(services.settings.retry_after_s)}
    return JSONResponse({"status": "unready", "reason": reason}, status_code=503, headers=headers)


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
    except Exception as exc:
        if not (
            isinstance(exc, (SQLAlchemyError, OSError, GenkeepError))
            or services.database.driver.is_unavailable(exc)
        ):
            raise
        # The counters are what an operator reads during an outage: still serve them.
        log.warning("/metrics without genkeep_tasks: the database did not answer (%s)", exc)
    body, content_type = exposition(snapshot)
    return Response(body, media_type=content_type)
