"""``POST /v1/chat/completions``: the OpenAI Chat Completions API through generate once."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from genkeep.api.chat_sse import chat_events, stream_headers
from genkeep.api.deps import current_owner
from genkeep.api.guard import GuardedRoute
from genkeep.api.openai_errors import ERROR_RESPONSES, OpenAIRoute
from genkeep.api.openai_requests import ChatCompletionRequest
from genkeep.api.openai_responses import completion_body, genkeep_headers
from genkeep.api.openapi import OPENAI_TAG, hot_route_extra
from genkeep.generate.cache_control import CacheControl
from genkeep.services import Services

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A chat.completion object, or with stream=true chat.completion.chunk "
        "events ending with `data: [DONE]`. X-Genkeep-* headers name the stored result.",
        "content": {"application/json": {}, "text/event-stream": {}},
    },
    **ERROR_RESPONSES,
}


def install(app: FastAPI) -> GuardedRoute:
    """Add the route to the app; ``genkeep.api.hot`` serves the requests it can take."""
    app.router.add_api_route(
        "/v1/chat/completions",
        chat_completions,
        methods=["POST"],
        tags=[OPENAI_TAG],
        response_class=Response,
        responses=_RESPONSES,
        openapi_extra=hot_route_extra(
            "no-cache (new version), no-store (persist nothing), max-age=N."
        ),
        route_class_override=OpenAIRoute,
    )
    route = app.router.routes[-1]
    assert isinstance(route, GuardedRoute)
    return route


async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """Answer from the stored result of this chat, or generate it exactly once."""
    # A hot path like /v1/generate's: the owner and header are read without FastAPI's
    # dependency solving, which cost more than the hit's read (documented by openapi_extra).
    owner = await current_owner(request, None)
    services: Services = request.app.state.services
    cache = CacheControl.parse(request.headers.get("cache-control"))
    call = body.to_call()
    response: Response
    if not body.stream:
        outcome = await services.chat.complete(owner, body.model, call, cache)
        response = Response(completion_body(outcome), media_type="application/json")
        response.raw_headers += genkeep_headers(outcome)
        return response
    stream = await services.chat.stream(owner, body.model, call, cache)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    response = StreamingResponse(chat_events(stream, include_usage), media_type="text/event-stream")
    response.raw_headers += stream_headers(stream)
    return response
