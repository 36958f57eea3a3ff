"""``POST /v1/generate``: read-first, single-flight generation."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from genkeep.api.deps import OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import documented
from genkeep.api.schemas import GenerateRequest, GenerateResponse

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["generate"])


@router.post("/generate", response_model=GenerateResponse, responses=documented(413, 502, 504))
async def generate(
    body: GenerateRequest,
    owner: OwnerDep,
    services: ServicesDep,
    cache_control: Annotated[
        str | None,
        Header(
            description="no-cache (new version, still single-flight), no-store (persist "
            "nothing), max-age=N (accept a stored result only if younger than N seconds)."
        ),
    ] = None,
) -> JSONResponse:
    """Return the stored result for this prompt, or generate it exactly once."""
    cache = body.cache_control(cache_control)
    outcome = await services.generate.generate(owner, body.prompt, body.profile, cache)
    # The hot path of cache hits: the outcome has exactly the response's fields, so it is
    # serialized directly instead of being validated into the model again.
    return JSONResponse(asdict(outcome))
