"""Typed dependencies: the current owner, the audit context, and the services."""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from genkeep.api.request_id import TRACE_ID, trace_id_of
from genkeep.core.caller import CALLER, Caller
from genkeep.db.jobs import Audit
from genkeep.db.keys import key_id_of
from genkeep.errors import Forbidden, MalformedRequest, Unauthorized
from genkeep.services import Services

# Owner ids appear in blob keys, so they keep to a safe alphabet.
OWNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


async def services(request: Request) -> Services:
    # async: a plain def dependency would run in the thread pool on every request.
    found: Services = request.app.state.services
    return found


# Declares the scheme in the OpenAPI document (the Authorize button); parsing is ours.
_bearer = HTTPBearer(auto_error=False, description="An API key: `genkeep keys create`.")


def bearer_token(request: Request) -> str | None:
    """The token of the one ``Authorization: Bearer`` header, scheme and spaces normalized.

    None without the header; Unauthorized for another scheme or an empty token;
    MalformedRequest for two Authorization headers (which one counts is ambiguous).
    """
    values = request.headers.getlist("authorization")
    if not values:
        return None
    if len(values) > 1:
        raise MalformedRequest("send one Authorization header, not several")
    parts = values[0].split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise Unauthorized("use `Authorization: Bearer <api key>`")
    return parts[1]


async def current_owner(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    """The one place a request's owner is decided (I3)."""
    return await owner_of(request)


async def owner_of(request: Request) -> str:
    """``current_owner`` without its documentation-only Bearer parameter; the caller (owner,
    key, trace) is kept for metering and limits (``core.caller``)."""
    owner = await _owner_of(request)
    key_id = key_id_of(bearer_token(request) or "")
    trace_id = request.scope.get(TRACE_ID)
    CALLER.set(Caller(owner, key_id, trace_id if isinstance(trace_id, str) else None))
    return owner


async def _owner_of(request: Request) -> str:
    found: Services = request.app.state.services
    settings = found.settings
    token = bearer_token(request)
    if token is not None:
        owner = await found.keys.authenticate(token)
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


def request_trace_id(request: Request) -> str:
    """The W3C trace id of this request (from ``traceparent``, or a new one)."""
    # RequestId picked it (and sends it as x-request-id); an app without it picks here.
    return str(request.scope.get(TRACE_ID) or trace_id_of(request.scope["headers"]))


def require_admin(request: Request) -> None:
    """Refuse a request without the admin token: 403 while ``GENKEEP_ADMIN_TOKEN`` is unset."""
    expected = request.app.state.services.settings.admin_token
    if expected is None:
        raise Forbidden("the admin API is off: set GENKEEP_ADMIN_TOKEN to turn it on")
    token = bearer_token(request) or ""
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("the admin API needs `Authorization: Bearer <GENKEEP_ADMIN_TOKEN>`")


def audit(request: Request, owner: Annotated[str, Depends(current_owner)]) -> Audit:
    """The actor (the owner, and the key it used) and W3C trace id (from ``traceparent``, or a
    new one) of this request."""
    trace_id = request_trace_id(request)
    # current_owner already refused a malformed header, so this parse cannot fail here.
    key_id = key_id_of(bearer_token(request) or "")
    return Audit(
        actor=f"{owner} (key:{key_id})" if key_id else owner,
        trace_id=trace_id,
        key_id=key_id or None,
    )


# What a dependency answers, computed from the request alone: how ``genkeep.api.hot``
# resolves the dependencies it serves without FastAPI's dependency solving.
RESOLVERS: dict[Callable[..., Any], Callable[[Request], Awaitable[Any]]] = {
    current_owner: owner_of,
    services: services,
}

ServicesDep = Annotated[Services, Depends(services)]
OwnerDep = Annotated[str, Depends(current_owner)]
AuditDep = Annotated[Audit, Depends(audit)]


# The Cache-Control request header of the generating routes (generate, chat, embeddings).
CacheControlHeader = Annotated[
    str | None,
    Header(
        description="no-cache (new version, still single-flight), no-store (persist nothing), "
        "max-age=N (accept a stored result only if younger than N seconds)."
    ),
]
