"""``POST /v1/generate``: read-first, single-flight generation."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from genkeep.api.deps import current_owner
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import documented, hot_route_extra
from genkeep.api.schemas import GenerateRequest, GenerateResponse
from genkeep.services import Services


def install(app: FastAPI) -> GuardedRoute:
    """Add the route to the app; ``genkeep.api.hot`` serves the requests it can take."""
    app.router.add_api_route(
        "/v1/generate",
        generate,
        methods=["POST"],
        tags=["generate"],
        response_model=GenerateResponse,
        responses=documented(413, 502, 504),
        openapi_extra=hot_route_extra(
            "no-cache (new version, still single-flight), no-store (persist nothing), "
            "max-age=N (accept a stored result only if younger than N seconds)."
        ),
        route_class_override=GuardedRoute,
    )
    route = app.router.routes[-1]
    assert isinstance(route, GuardedRoute)
    return route


async def generate(body: GenerateRequest, request: Request) -> JSONResponse:
    """Return the stored result for this prompt, or generate it exactly once."""
    # The hot path of cache hits. The owner is decided by the dependency every route uses,
    # called directly: FastAPI's dependency solving cost more than the read.
    owner = await current_owner(request, None)
    services: Services = request.app.state.services
    cache = body.cache_control(request.headers.get("cache-control"))
    outcome = await services.generate.generate(owner, body.prompt, body.profile, cache)
    # The outcome has exactly the response's fields, so it is serialized directly instead
    # of being validated into the model again.
    return JSONResponse(outcome.as_json())
