"""``POST /v1/chat/completions``: the OpenAI Chat Completions API through generate once."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse

from genkeep.api.chat_sse import chat_events, stream_headers
from genkeep.api.deps import CacheControlHeader, OwnerDep, ServicesDep
from genkeep.api.hot import OpenAIHotRoute
from genkeep.api.openai_errors import ERROR_RESPONSES, OpenAIRoute
from genkeep.api.openai_requests import ChatCompletionRequest
from genkeep.api.openai_responses import completion_body, genkeep_headers
from genkeep.api.openapi import OPENAI_TAG
from genkeep.generate.cache_control import CacheControl

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A chat.completion object, or with stream=true chat.completion.chunk "
        "events ending with `data: [DONE]`. X-Genkeep-* headers name the stored result.",
        "content": {"application/json": {}, "text/event-stream": {}},
    },
    **ERROR_RESPONSES,
}


def install(app: FastAPI, *, hot: bool = True) -> None:
    """Add the route to the app; ``hot`` serves it with ``HotRoute``'s lean handler."""
    app.router.add_api_route(
        "/v1/chat/completions",
        chat_completions,
        methods=["POST"],
        tags=[OPENAI_TAG],
        response_class=Response,
        responses=_RESPONSES,
        route_class_override=OpenAIHotRoute if hot else OpenAIRoute,
    )


async def chat_completions(
    body: ChatCompletionRequest,
    owner: OwnerDep,
    services: ServicesDep,
    cache_control: CacheControlHeader = None,
) -> Response:
    """Answer from the stored result of this chat, or generate it exactly once."""
    cache = CacheControl.parse(cache_control)
    call = body.to_call()
    response: Response
    if not body.stream:
        # Counted toward the caller's requests per minute while the stored answer is read.
        outcome, limited = await services.metering.counted(
            lambda: services.chat.complete(owner, body.model, call, cache)
        )
        response = Response(
            completion_body(outcome), media_type="application/json", headers=limited or None
        )
        response.raw_headers += genkeep_headers(outcome)
        return response
    limited = await services.metering.admit_request()
    stream = await services.chat.stream(owner, body.model, call, cache)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    events = chat_events(stream, include_usage, services.database.driver.is_unavailable)
    response = StreamingResponse(events, media_type="text/event-stream", headers=limited or None)
    response.raw_headers += stream_headers(stream)
    return response
