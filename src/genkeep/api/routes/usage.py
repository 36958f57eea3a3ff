"""``GET /v1/usage``: the caller's usage ledger, summed, and its own limits (read-only);
``/v1/admin/limits/{subject}``: any key's or owner's, for an operator (GENKEEP_ADMIN_TOKEN)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from genkeep.api.deps import OwnerDep, ServicesDep, require_admin
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import documented
from genkeep.db.spend import Limits
from genkeep.errors import BadInput, NotFound

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["usage"])
_SUBJECT = re.compile(r"^(key|owner):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class UsageRow(BaseModel):
    day: str | None = None
    profile: str | None = None
    key: str | None = None
    calls: int
    hits: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = Field(description="Of prompt_tokens, those the provider had cached.")
    cost_usd: float
    saved_usd: float


class LimitsIn(BaseModel):
    """A subject's limits; a field left out (or null) is no limit of that kind."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    budget_usd: float | None = Field(default=None, ge=0)
    budget_period: Literal["day", "month"] = "day"
    lifetime_usd: float | None = Field(default=None, ge=0)

    def limits(self) -> Limits:
        return Limits(
            rpm=self.rpm,
            tpm=self.tpm,
            budget_micros=_micros(self.budget_usd),
            budget_period=self.budget_period if self.budget_usd is not None else None,
            lifetime_micros=_micros(self.lifetime_usd),
        )

    @classmethod
    def of(cls, limits: Limits) -> LimitsIn:
        return cls(
            rpm=limits.rpm,
            tpm=limits.tpm,
            budget_usd=None if limits.budget_micros is None else limits.budget_micros / 1e6,
            budget_period="month" if limits.budget_period == "month" else "day",
            lifetime_usd=None if limits.lifetime_micros is None else limits.lifetime_micros / 1e6,
        )


def _micros(usd: float | None) -> int | None:
    return None if usd is None else round(usd * 1_000_000)


@router.get("/usage", response_model=list[UsageRow], responses=documented(422))
async def usage(
    owner: OwnerDep,
    services: ServicesDep,
    group: Annotated[Literal["day", "profile", "key"], Query()] = "day",
    since: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
) -> list[dict[str, Any]]:
    """Your generator calls and hits, summed per day, profile or key (hits spend $0)."""
    await services.metering.flush()  # this process's hits not yet written
    return await services.spend.usage(owner, group, since)


class OwnLimitsOut(BaseModel):
    """The limits on the caller's own credentials: the owner's, then each live API key's."""

    subject: str = Field(description="owner:<owner id> or key:<key id>")
    name: str | None = Field(None, description="The key's name")
    limits: LimitsIn | None = Field(description="None: no limit is set")


@router.get("/usage/limits", response_model=list[OwnLimitsOut])
async def own_limits(owner: OwnerDep, services: ServicesDep) -> list[OwnLimitsOut]:
    """Your limits and your API keys' (read-only; an operator sets them)."""
    found = await services.spend.owner_limits(owner)
    return [
        OwnLimitsOut(subject=s, name=n, limits=None if lim is None else LimitsIn.of(lim))
        for s, n, lim in found
    ]


@router.get(
    "/admin/limits/{subject}", response_model=LimitsIn, responses=documented(401, 403, 404, 422)
)
async def get_limits(subject: str, request: Request, services: ServicesDep) -> LimitsIn:
    """The limits of ``key:<id>`` or ``owner:<id>``."""
    require_admin(request)
    found = await services.spend.limits_of(_checked(subject))
    if found is None:
        raise NotFound(f"no limits for {subject}")
    return LimitsIn.of(found)


@router.put(
    "/admin/limits/{subject}", response_model=LimitsIn, responses=documented(401, 403, 404, 422)
)
async def put_limits(
    subject: str, body: LimitsIn, request: Request, services: ServicesDep
) -> LimitsIn:
    """Set the limits of ``key:<id>`` or ``owner:<id>`` (every process within
    GENKEEP_LIMITS_CACHE_S)."""
    require_admin(request)
    await services.spend.set_limits(_checked(subject), body.limits())
    return body


def _checked(subject: str) -> str:
    if not _SUBJECT.match(subject):
        raise BadInput("the subject is key:<key id> or owner:<owner id>")
    return subject
