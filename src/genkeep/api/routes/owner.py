"""Who the caller is: the owner its credentials resolve to, as every other route sees it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from genkeep.api.deps import OwnerDep, ServicesDep, bearer_token
from genkeep.api.guard import GuardedRoute
from genkeep.db.keys import key_id_of

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["owner"])


class OwnerOut(BaseModel):
    owner: str
    key_id: str | None = None


@router.get("/me", response_model=OwnerOut)
async def me(request: Request, owner: OwnerDep) -> OwnerOut:
    """The owner of this request (the console's header shows it), and the API key's id."""
    return OwnerOut(owner=owner, key_id=key_id_of(bearer_token(request) or ""))


class StoredUsageOut(BaseModel):
    profile: str
    source: str = Field(description="generated (one generator call each), regenerated, edited…")
    results: int
    prompt_tokens: int
    completion_tokens: int


@router.get("/me/stored-usage", response_model=list[StoredUsageOut])
async def stored_usage(owner: OwnerDep, services: ServicesDep) -> list[StoredUsageOut]:
    """The owner's stored results and their tokens, by profile and source, counted in the
    database (hits store nothing, so they are not here; /metrics counts them per server)."""
    rows = await services.prompts.usage(owner)
    return [StoredUsageOut.model_validate(row, from_attributes=True) for row in rows]
