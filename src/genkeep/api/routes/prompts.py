"""Prompts and their versioned results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from genkeep.api.cursor import CursorQuery, paged, position_of
from genkeep.api.deps import OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import documented
from genkeep.api.schemas import (
    DuplicateOut,
    EditRequest,
    GenerateResponse,
    PromptOut,
    PromptSummary,
    ResultOut,
)
from genkeep.core.types import INT64_MAX
from genkeep.errors import NotFound, PayloadTooLarge

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["prompts"])


@router.get("/prompts", response_model=list[PromptSummary])
async def list_prompts(
    owner: OwnerDep,
    services: ServicesDep,
    request: Request,
    response: Response,
    q: Annotated[str, Query(max_length=500, description="Text the prompt contains")] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
    offset: Annotated[
        int, Query(ge=0, le=INT64_MAX, description="Rows to skip (each costs a read; see cursor)")
    ] = 0,
) -> list[PromptSummary]:
    """The owner's prompts, newest first, searchable and paged (Link rel=next)."""
    found = await services.prompts.list_prompts(
        owner, search=q, limit=limit + 1, offset=offset, after=position_of(cursor)
    )
    return [PromptSummary.of(p) for p in paged(request, response, found, limit)]


# Declared before /prompts/{prompt_id}, which would otherwise take "duplicates" for an id.
@router.get("/prompts/duplicates", response_model=list[DuplicateOut])
async def list_duplicates(owner: OwnerDep, services: ServicesDep) -> list[DuplicateOut]:
    """The owner's own prompts stored more than once for one normalized key (I1 says none
    should be: a non-empty answer means data written around the unique constraint)."""
    return [DuplicateOut.of(d) for d in await services.prompts.find_duplicates(owner)]


@router.get("/prompts/{prompt_id}", response_model=PromptOut, responses=documented(404))
async def get_prompt(prompt_id: str, owner: OwnerDep, services: ServicesDep) -> PromptOut:
    """A prompt with every result version."""
    prompt = await services.prompts.get_prompt(owner, prompt_id)
    if prompt is None:
        raise NotFound(f"prompt {prompt_id} not found")
    return PromptOut.of(prompt, await services.prompts.list_results(owner, prompt_id))


@router.post(
    "/prompts/{prompt_id}/regenerate",
    response_model=GenerateResponse,
    responses=documented(404, 502, 504),
)
async def regenerate(prompt_id: str, owner: OwnerDep, services: ServicesDep) -> GenerateResponse:
    """Generate a new result version (source=regenerated); concurrent calls share one."""
    prompt = await services.prompts.get_prompt(owner, prompt_id)
    if prompt is not None and services.chat.made_by_chat(prompt.profile_name, prompt.profile_key):
        outcome = await services.chat.regenerate(owner, prompt.profile_name, prompt.prompt_text)
        return GenerateResponse.of(outcome)
    return GenerateResponse.of(await services.generate.regenerate(owner, prompt_id))


@router.get("/results/{result_id}", response_model=ResultOut, responses=documented(404))
async def get_result(result_id: str, owner: OwnerDep, services: ServicesDep) -> ResultOut:
    result = await services.prompts.get_result(owner, result_id)
    if result is None:
        raise NotFound(f"result {result_id} not found")
    return ResultOut.of(result)


@router.post(
    "/results/{result_id}/edits",
    response_model=ResultOut,
    status_code=201,
    responses=documented(404, 413),
)
async def edit_result(
    result_id: str, body: EditRequest, owner: OwnerDep, services: ServicesDep
) -> ResultOut:
    """Store edited content as the prompt's next version (source=edited)."""
    if len(body.content.encode("utf-8")) > services.settings.max_edit_bytes:
        raise PayloadTooLarge(
            f"edited content is larger than {services.settings.max_edit_bytes} bytes"
        )
    edited = await services.prompts.add_edit(owner, result_id, body.content)
    if edited is None:
        raise NotFound(f"result {result_id} not found")
    return ResultOut.of(edited)
