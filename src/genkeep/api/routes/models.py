"""``GET /v1/models``: the generator profiles a client may name as ``model``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from genkeep.api.deps import OwnerDep, ServicesDep
from genkeep.api.openai_errors import ERROR_RESPONSES, OpenAIRoute
from genkeep.api.openai_responses import ModelList, ModelOut
from genkeep.api.openapi import OPENAI_TAG
from genkeep.errors import UnknownModel
from genkeep.generate.chat import unknown_model

router = APIRouter(prefix="/v1", tags=[OPENAI_TAG], route_class=OpenAIRoute)
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (401, 404, 500, 503)
}


@router.get("/models", response_model=ModelList, responses=_ERRORS)
async def list_models(owner: OwnerDep, services: ServicesDep) -> ModelList:
    """Every configured profile; any owner may use any of them."""
    return ModelList(data=[ModelOut(id=name) for name in services.chat.models()])


@router.get("/models/{model}", response_model=ModelOut, responses=_ERRORS)
async def get_model(model: str, owner: OwnerDep, services: ServicesDep) -> ModelOut:
    if not services.chat.has_model(model):
        raise UnknownModel(unknown_model(model))
    return ModelOut(id=model)
