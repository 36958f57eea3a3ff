"""Artifacts: versions per (job, kind) with retention at read time, and signed downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from genkeep.api.delivery import DELIVERY_ROUTE, DeliveryQuery, deliver_blob
from genkeep.api.deps import OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.job_schemas import ArtifactOut
from genkeep.api.openapi import documented
from genkeep.errors import NotFound

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["artifacts"])


@router.get("/jobs/{job_id}/artifacts", response_model=list[ArtifactOut], responses=documented(404))
async def list_artifacts(
    job_id: str,
    owner: OwnerDep,
    services: ServicesDep,
    kind: Annotated[str | None, Query(max_length=32)] = None,
) -> list[ArtifactOut]:
    """Per kind, the latest version and the 5 before it, newest first."""
    await services.jobs.require(owner, job_id)
    return [ArtifactOut.of(a) for a in await services.artifacts.list_visible(owner, job_id, kind)]


@router.get("/artifacts/{artifact_id}", response_model=ArtifactOut, responses=documented(404))
async def get_artifact(artifact_id: str, owner: OwnerDep, services: ServicesDep) -> ArtifactOut:
    artifact = await services.artifacts.get(owner, artifact_id)
    if artifact is None:
        raise NotFound(f"artifact {artifact_id} not found")
    return ArtifactOut.of(artifact)


@router.get("/artifacts/{artifact_id}/download", **DELIVERY_ROUTE)
async def download_artifact(
    artifact_id: str, owner: OwnerDep, services: ServicesDep, deliver: DeliveryQuery = "redirect"
) -> Response:
    """302 to a signed, expiring URL of the artifact's file (or, by ``deliver``, the URL or
    the file)."""
    artifact = await services.artifacts.get(owner, artifact_id)
    if artifact is None:
        raise NotFound(f"artifact {artifact_id} not found")
    return await deliver_blob(services, artifact.blob_key, artifact.filename, deliver)
