"""``POST /v1/generate``: read-first, single-flight generation."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from genkeep.api.deps import CacheControlHeader, OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.hot import HotRoute
from genkeep.api.openapi import documented
from genkeep.api.schemas import GenerateRequest, GenerateResponse


def install(app: FastAPI, *, hot: bool = True) -> None:
    """Add the route to the app; ``hot`` serves it with ``HotRoute``'s lean handler."""
    app.router.add_api_route(
        "/v1/generate",
        generate,
        methods=["POST"],
        tags=["generate"],
        response_model=GenerateResponse,
        responses=documented(413, 429, 502, 504),
        route_class_override=HotRoute if hot else GuardedRoute,
    )


async def generate(
    body: GenerateRequest,
    owner: OwnerDep,
    services: ServicesDep,
    cache_control: CacheControlHeader = None,
) -> JSONResponse:
    """Return the stored result for this prompt, or generate it exactly once."""
    cache = body.cache_control(cache_control)
    # Counted toward the caller's requests per minute while the stored answer is read.
    outcome, limited = await services.metering.counted(
        lambda: services.generate.generate(owner, body.prompt, body.profile, cache)
    )
    # The outcome has exactly the response's fields, so it is serialized directly instead
    # of being validated into the model again.
    return JSONResponse(outcome.as_json(), headers=limited or None)
