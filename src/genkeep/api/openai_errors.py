"""OpenAI's error object on the OpenAI-compatible routes, so SDKs raise their own classes.

Every other route answers problem+json. These routes reuse the app's own handlers (so a
status, a Retry-After, a logged 500 are decided in one place) and reshape what they answer
into ``{"error": {"message", "type", "param", "code"}}``; validation errors name the
parameter, as OpenAI does.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from genkeep.api.failures import scrubbed_traceback
from genkeep.api.guard import GuardedRoute
from genkeep.api.openai_responses import ErrorBody
from genkeep.api.outage import database_unavailable
from genkeep.api.problems import handled, input_errors, truncate
from genkeep.errors import ContextLengthExceeded, GenkeepError, UnknownModel

log = logging.getLogger(__name__)

# The SDKs map 400 to BadRequestError; 422 would be UnprocessableEntityError.
_STATUS = {422: 400}
_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "rate_limit_error"}
_FORWARDED_HEADERS = ("retry-after", "retry-after-ms", "www-authenticate", "allow")
_FORWARDED_PREFIX = "x-ratelimit-"
# OpenAI answers a spent quota with its own type; a budget is genkeep's quota.
_OWN_TYPE = {"budget_exceeded": "budget_exceeded"}
_PARAMS: dict[type[Exception], str] = {UnknownModel: "model", ContextLengthExceeded: "messages"}
# Paths of OpenAI's API: one genkeep does not serve answers as OpenAI's own unknown URL.
_OPENAI_PREFIX = "/v1/"
_UNAVAILABLE = "The database is unavailable; retry shortly"
_OUTAGE = "database_unavailable"


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    kind = _OWN_TYPE.get(code or "") or _TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    error = {"message": shown(message), "type": kind, "param": param and shown(param), "code": code}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def shown(text: str) -> str:
    """Client text fit to echo: a lone surrogate cannot be encoded, so it is escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_object(exc: BaseException, unavailable: bool) -> dict[str, Any]:
    """The error event of a stream that fails after its headers went out."""
    if isinstance(exc, GenkeepError):
        code = exc.code.replace("-", "_")
        kind = "server_error" if exc.status >= 500 else "invalid_request_error"
        return {"message": exc.detail, "type": kind, "param": None, "code": code}
    if unavailable:
        return {"message": _UNAVAILABLE, "type": "server_error", "param": None, "code": _OUTAGE}
    return {
        "message": "an unexpected error occurred; it has been logged",
        "type": "server_error",
        "param": None,
        "code": "internal",
    }


def _validation(exc: RequestValidationError) -> JSONResponse:
    errors = input_errors(exc)
    # A refusal we wrote names the problem best; a union's type mismatches come second.
    first = next((e for e in errors if e.get("type") == "value_error"), errors[0] if errors else {})
    loc = [str(part) for part in first.get("loc", ())][1:]  # drop "body"
    param = ".".join(loc) or None
    kind, message = first.get("type", ""), str(first.get("msg", "invalid request"))
    if kind == "json_invalid":
        return error_response(400, "We could not parse the JSON body of your request.")
    if kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
        message = f"{message} (in '{param}')" if param and f"'{param}'" not in message else message
    else:
        message = f"Invalid value for '{param}': {message}" if param else message
    return error_response(400, message, param=param, code="invalid_value")


async def _from_app_handler(request: Request, exc: Exception) -> Response:
    """The app's answer to ``exc``, as an OpenAI error with the same status and Retry-After."""
    problem = await handled(request, exc)
    if problem is None:
        # What the failure boundary decides (genkeep.api.failures), in the shape an SDK shows.
        if database_unavailable(request.app, exc):
            retry_after = str(request.app.state.retry_after_s)
            return error_response(
                503, _UNAVAILABLE, code=_OUTAGE, headers={"Retry-After": retry_after}
            )
        route = getattr(request.scope.get("route"), "path", "(no route)")  # never client text
        log.error("unhandled error on %s\n%s", route, scrubbed_traceback(exc))
        return error_response(
            500, "an unexpected error occurred; it has been logged", code="internal"
        )
    try:
        body = json.loads(bytes(problem.body))
    except ValueError:
        body = {}
    status = _STATUS.get(problem.status_code, problem.status_code)
    headers = {
        k: v
        for k, v in problem.headers.items()
        if k.lower() in _FORWARDED_HEADERS or k.lower().startswith(_FORWARDED_PREFIX)
    }
    code = str(body.get("code", "error")).replace("-", "_")
    message = str(body.get("detail") or body.get("title") or "error")
    param = _PARAMS.get(type(exc)) or _field_of(exc)
    return error_response(status, message, param=param, code=code, headers=headers)


class OpenAIRoute(GuardedRoute):
    """A guarded route whose errors, its dependencies' (auth) included, answer in OpenAI's
    shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                return await self.answer_error(request, exc)

        return route

    @staticmethod
    async def answer_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, RequestValidationError):
            return _validation(exc)
        return await _from_app_handler(request, exc)


# OpenAPI: what these routes answer when they fail.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Invalid or unsupported parameter (named in error.param); messages larger than "
        "GENKEEP_MAX_CHAT_BYTES (code context_length_exceeded).",
        401: "Missing or invalid genkeep API key.",
        404: "Unknown model (a generator profile).",
        413: "The request body is larger than GENKEEP_MAX_BODY_BYTES.",
        429: "Over a rate limit or budget (code budget_exceeded), or the generator's provider "
        "is rate limiting (code upstream_rate_limited); Retry-After says when to retry.",
        500: "An unexpected error (logged).",
        502: "The generator failed (its provider answered 5xx or an unusable body).",
        503: "The result could not be stored, or the database is unavailable.",
        504: "Timed out waiting for the generator or for another request's generation.",
    }.items()
}


def _field_of(exc: Exception) -> str | None:
    """The parameter an input error names (``errors[0].loc`` without ``body``), as OpenAI's
    ``param``; None where it names none."""
    errors = exc.extra.get("errors") if isinstance(exc, GenkeepError) else None
    if not errors or not isinstance(errors[0], dict):
        return None
    loc = [str(part) for part in errors[0].get("loc", ())]
    return ".".join(loc[1:]) if loc[:1] == ["body"] and len(loc) > 1 else None


def install(app: FastAPI) -> None:
    """Unserved ``/v1/*`` paths answer 404 in OpenAI's shape (the SDKs' NotFoundError);
    every other HTTP error keeps the app's handler (problem+json)."""
    problem_handler = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        # No route in the scope: the router found none (a route's own 404 keeps its shape).
        if (
            exc.status_code == 404
            and "route" not in request.scope
            and path.startswith(_OPENAI_PREFIX)
        ):
            # OpenAI's own words for a URL it does not know.
            return error_response(404, f"Invalid URL ({request.method} {truncate(path)})")
        answer = problem_handler(request, exc)
        response: Response = await answer if inspect.isawaitable(answer) else answer
        return response

    app.add_exception_handler(StarletteHTTPException, http_error)
