"""Every error answers RFC 9457 problem+json; no client input can produce a 500."""

from __future__ import annotations

import inspect
import math
import re
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from genkeep.errors import GenkeepError, RateLimited

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://genkeep.dev/problems/"
# Echoed client input is cut here, so a 60 KB profile name is not sent back whole.
MAX_ECHO = 200
MAX_DETAIL = 1000
# pydantic tags a union member's errors with the member (version.function-before[...],
# version.none); the client's field is the path without them.
_UNION_TAG = re.compile(r"^(none|str|int|float|bool|list\[.*\]|dict\[.*\]|function-\w+\[.*\])$")
# RFC 6750: a 401 names the scheme the client should use.
_WWW_AUTHENTICATE = 'Bearer realm="genkeep"'
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": _TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": truncate(detail, MAX_DETAIL),
        "instance": truncate(instance, MAX_ECHO),
        "code": code,
        **{name: _bounded(value) for name, value in extra.items()},
    }
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", _WWW_AUTHENTICATE)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def truncate(text: str, limit: int = MAX_ECHO) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more)"


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return truncate(value)
    if isinstance(value, list):
        return [_bounded(v) for v in value[:50]]
    if isinstance(value, dict):
        return {k: _bounded(v) for k, v in value.items()}
    return value


async def _genkeep_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GenkeepError)
    headers = {}
    if exc.status == 503:
        headers["Retry-After"] = str(request.app.state.retry_after_s)
    if isinstance(exc, RateLimited):
        headers.update(rate_limit_headers(exc))
    return problem(
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        request.url.path,
        headers=headers,
        **exc.extra,
    )


def rate_limit_headers(exc: RateLimited) -> dict[str, str]:
    """Retry-After in whole seconds (HTTP's unit), retry-after-ms as the SDKs read it first."""
    whole = max(1, math.ceil(exc.retry_after_s))
    return {
        **exc.headers,
        "Retry-After": str(whole),
        "retry-after-ms": str(max(1, round(exc.retry_after_s * 1000))),
    }


def input_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each error at the client's field, without union-member tags; an optional field's
    "should be None" is dropped where the same field has a truer complaint."""
    errors = [
        {
            "loc": [part for part in e.get("loc", ()) if not _UNION_TAG.match(str(part))],
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    others = {tuple(e["loc"]) for e in errors if e["type"] != "none_required"}
    return [e for e in errors if e["type"] != "none_required" or tuple(e["loc"]) not in others]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = input_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        return problem(
            400,
            "invalid-json",
            "Malformed JSON",
            "the request body is not valid JSON",
            request.url.path,
            errors=errors,
        )
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return problem(422, "validation", "Invalid request", detail, request.url.path, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {
        400: "bad-request",
        404: "not-found",
        405: "method-not-allowed",
        413: "payload-too-large",
    }.get(exc.status_code, "http-error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # RFC 9110: Allow lists every method of the path; the router names only those of
        # the first route it matched (GET /v1/jobs, not POST /v1/jobs beside it).
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(
        exc.status_code, code, str(exc.detail), str(exc.detail), request.url.path, headers=headers
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path (each is asked, as
    the router would be: included routers keep their routes to themselves)."""
    found = []
    for method in _METHODS:
        # From the app's root: inside a mount, root_path has grown by the mount's path.
        root = request.scope.get("app_root_path", "")
        scope = {**request.scope, "method": method, "root_path": root}
        for route in request.app.router.routes:
            # A mount matches any method; the app mounts only static files (GET, HEAD).
            if isinstance(route, Mount) and method not in ("GET", "HEAD"):
                continue
            if route.matches(scope)[0] is Match.FULL:
                found.append(method)
                break
    return found


async def handled(request: Request, exc: Exception) -> Response | None:
    """The answer of the app's handler for ``exc``'s class, as Starlette's exception layer
    picks it; None when no handler takes it."""
    handlers = request.app.exception_handlers
    handler = next((handlers[k] for k in type(exc).__mro__ if k in handlers), None)
    if handler is None:
        return None
    answer = handler(request, exc)
    response: Response = await answer if inspect.isawaitable(answer) else answer
    return response


async def handler_answer(request: Request, exc: Exception) -> Response:
    """What Starlette's exception layer answers; an exception no handler takes goes on (to
    ``failures.FailureBoundary``)."""
    response = await handled(request, exc)
    if response is None:
        raise exc
    return response


def install(app: FastAPI, *, retry_after_s: int = 5) -> None:
    """Map errors to problem+json; unexpected ones are answered by ``failures.FailureBoundary``."""
    app.state.retry_after_s = retry_after_s
    app.add_exception_handler(GenkeepError, _genkeep_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
