"""Prompts and their versioned results."""

from __future__ import annotations

from fastapi import APIRouter

from genkeep.api.deps import OwnerDep, ServicesDep
from genkeep.api.schemas import EditRequest, GenerateResponse, PromptOut, ResultOut
from genkeep.errors import BadInput, NotFound

router = APIRouter(prefix="/v1", tags=["prompts"])


@router.get("/prompts/{prompt_id}", response_model=PromptOut)
async def get_prompt(prompt_id: str, owner: OwnerDep, services: ServicesDep) -> PromptOut:
    """A prompt with every result version."""
    prompt = await services.prompts.get_prompt(owner, prompt_id)
    if prompt is None:
        raise NotFound(f"prompt {prompt_id} not found")
    return PromptOut.of(prompt, await services.prompts.list_results(owner, prompt_id))


@router.post("/prompts/{prompt_id}/regenerate", response_model=GenerateResponse)
async def regenerate(prompt_id: str, owner: OwnerDep, services: ServicesDep) -> GenerateResponse:
    """Generate a new result version (source=regenerated); concurrent calls share one."""
    prompt = await services.prompts.get_prompt(owner, prompt_id)
    if prompt is not None and services.chat.made_by_chat(prompt.profile_name, prompt.profile_key):
        outcome = await services.chat.regenerate(owner, prompt.profile_name, prompt.prompt_text)
        return GenerateResponse.of(outcome)
    return GenerateResponse.of(await services.generate.regenerate(owner, prompt_id))


@router.get("/results/{result_id}", response_model=ResultOut)
async def get_result(result_id: str, owner: OwnerDep, services: ServicesDep) -> ResultOut:
    result = await services.prompts.get_result(owner, result_id)
    if result is None:
        raise NotFound(f"result {result_id} not found")
    return ResultOut.of(result)


@router.post("/results/{result_id}/edits", response_model=ResultOut, status_code=201)
async def edit_result(
    result_id: str, body: EditRequest, owner: OwnerDep, services: ServicesDep
) -> ResultOut:
    """Store edited content as the prompt's next version (source=edited)."""
    if len(body.content.encode("utf-8")) > services.settings.max_edit_bytes:
        raise BadInput(f"edited content is larger than {services.settings.max_edit_bytes} bytes")
    edited = await services.prompts.add_edit(owner, result_id, body.content)
    if edited is None:
        raise NotFound(f"result {result_id} not found")
    return ResultOut.of(edited)
