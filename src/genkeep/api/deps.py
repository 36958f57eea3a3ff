"""Typed dependencies: the current owner, the audit context, and the services."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, Request

from genkeep.db.jobs import Audit
from genkeep.errors import Unauthorized
from genkeep.services import Services

# Owner ids appear in blob keys, so they keep to a safe alphabet.
OWNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


async def services(request: Request) -> Services:
    # async: a plain def dependency would run in the thread pool on every request.
    found: Services = request.app.state.services
    return found


async def current_owner(request: Request) -> str:
    """The one place a request's owner is decided (I3)."""
    found: Services = request.app.state.services
    settings = found.settings
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use `Authorization: Bearer <api key>`")
        owner = await found.keys.authenticate(token.strip())
        if owner is None:
            raise Unauthorized("the API key is invalid or revoked")
        return owner
    if settings.owner_header:
        owner = request.headers.get(settings.owner_header, "")
        if OWNER_ID.match(owner):
            return owner
        raise Unauthorized(
            f"the trusted gateway header {settings.owner_header} is missing or malformed"
        )
    if settings.auth_enforced:
        raise Unauthorized("an API key is required: `Authorization: Bearer <api key>`")
    return settings.default_owner


def audit(request: Request) -> Audit:
    """The actor and W3C trace id (from ``traceparent``, or a new one) of this request."""
    match = _TRACEPARENT.match(request.headers.get("traceparent", ""))
    trace_id = match.group(1) if match and set(match.group(1)) != {"0"} else uuid.uuid4().hex
    actor = "api"
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer gk_"):
        actor = "key:" + authorization.split("_", 2)[1]
    return Audit(actor=actor, trace_id=trace_id)


ServicesDep = Annotated[Services, Depends(services)]
OwnerDep = Annotated[str, Depends(current_owner)]
AuditDep = Annotated[Audit, Depends(audit)]
