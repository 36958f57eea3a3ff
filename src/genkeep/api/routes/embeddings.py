"""``POST /v1/embeddings``: the OpenAI Embeddings API through generate once, input by input."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from genkeep.api.deps import CacheControlHeader, OwnerDep, ServicesDep
from genkeep.api.hot import OpenAIHotRoute
from genkeep.api.openai_errors import ERROR_RESPONSES, OpenAIRoute
from genkeep.api.openapi import OPENAI_TAG
from genkeep.core.types import json_integer
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.embedder import EmbeddingCall
from genkeep.generate.embeddings import EmbeddingAnswer

# OpenAI's own limit on the inputs of one request.
MAX_INPUTS = 2048
# Wider than any embedding model's vector (OpenAI's largest has 3072): the built-in
# embedder makes what is asked, and a request must not ask it for gigabytes.
MAX_DIMENSIONS = 8192
Text = Annotated[str, Field(min_length=1)]
# JSON Schema's integer, as core.types has them (3.0 is 3): the validator goes last.
Dimensions = Annotated[int, Field(ge=1, le=MAX_DIMENSIONS), BeforeValidator(json_integer)]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An embeddings list, one vector per input in order; `genkeep` says how "
        "many inputs were stored already (cached) and how many went upstream.",
        "content": {"application/json": {}},
    },
    **ERROR_RESPONSES,
}


class EmbeddingRequest(BaseModel):
    """The Embeddings request; inputs are text (token arrays are refused by name)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, description="A genkeep generator profile (GET /v1/models).")
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS)] = Field(
        description=f"A text, or up to {MAX_INPUTS} texts."
    )
    dimensions: Dimensions | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(None, description="Accepted; not part of the key, not forwarded.")

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, int | list) for item in items):
            raise ValueError("token arrays are not supported by genkeep: send the text")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


def install(app: FastAPI, *, hot: bool = True) -> None:
    """Add the route to the app; ``hot`` serves it with ``HotRoute``'s lean handler."""
    app.router.add_api_route(
        "/v1/embeddings",
        embeddings,
        methods=["POST"],
        tags=[OPENAI_TAG],
        response_class=Response,
        responses=_RESPONSES,
        route_class_override=OpenAIHotRoute if hot else OpenAIRoute,
    )


async def embeddings(
    body: EmbeddingRequest,
    owner: OwnerDep,
    services: ServicesDep,
    cache_control: CacheControlHeader = None,
) -> Response:
    """One stored vector per input; the inputs that miss go upstream in one call."""
    cache = CacheControl.parse(cache_control)
    call = EmbeddingCall(body.dimensions, body.encoding_format)
    limited = await services.metering.admit_request()
    answer = await services.embeddings.embed(owner, body.model, body.texts(), call, cache)
    response = Response(
        embeddings_body(answer, call), media_type="application/json", headers=limited or None
    )
    cached = all(o.cached for o in answer.outcomes)
    response.raw_headers.append((b"x-genkeep-cached", b"true" if cached else b"false"))
    return response


_string = json.encoder.encode_basestring


def embeddings_body(answer: EmbeddingAnswer, call: EmbeddingCall) -> bytes:
    """The ``list`` object, filled with the stored vectors as they were encoded."""
    quote = call.encoding_format == "base64"
    data = ",".join(
        f'{{"object":"embedding","index":{index},"embedding":'
        f"{_string(o.content) if quote else o.content}}}"
        for index, o in enumerate(answer.outcomes)
    )
    tokens = sum(o.prompt_tokens or 0 for o in answer.outcomes)
    cached = sum(1 for o in answer.outcomes if o.cached)
    coalesced = sum(1 for o in answer.outcomes if o.coalesced)
    spent = sum(o.prompt_tokens or 0 for o in answer.outcomes if not o.cached and not o.coalesced)
    genkeep = {
        "cached": cached == len(answer.outcomes),
        "cached_inputs": cached,
        "coalesced_inputs": coalesced,
        "generated_inputs": len(answer.outcomes) - cached - coalesced,
        "spent_prompt_tokens": spent,
        "result_ids": [o.result_id for o in answer.outcomes],
    }
    return (
        f'{{"object":"list","data":[{data}],"model":{_string(answer.model)},'
        f'"usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}},'
        f'"genkeep":{json.dumps(genkeep, separators=(",", ":"))}}}'
    ).encode()
