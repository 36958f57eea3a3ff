"""The API's one input gate: what the database cannot hold is refused before any route runs.

Two pieces, applied to every route:

- ``BodyLimit`` (ASGI middleware) caps every request body (413 before it is read when
  Content-Length says so, else as soon as the count passes the cap); a route may raise its
  own cap with ``allow_body`` (job file uploads);
- ``GuardedRoute`` (every router's route class) checks path and query values and the JSON
  body as one tree: no NUL, no lone surrogate (PostgreSQL text refuses both), no NaN or
  Infinity (JSON has neither), no nesting deeper than ``MAX_JSON_DEPTH``. The error names
  the field. Ranges of integers and durations are in the schemas (``genkeep.core.types``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Coroutine
from email.message import Message as MimeMessage
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import PydanticUndefined as Undefined
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.api.problems import handler_answer
from genkeep.errors import InvalidJson, InvalidText, MalformedRequest, PayloadTooLarge

MAX_JSON_DEPTH = 64
_LIMIT_KEY = "genkeep.body_limit"


class BodyLimit:
    """ASGI middleware: a request body larger than the cap in force answers 413."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[_LIMIT_KEY] = self.max_body_bytes
        declared = content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            # Read lazily: the route may have raised the cap (allow_body) before this.
            nonlocal received
            limit = scope[_LIMIT_KEY]
            if declared is not None and declared > limit:
                raise PayloadTooLarge(
                    f"the request body ({declared} bytes) is larger than the limit of {limit} bytes"
                )
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


def allow_body(request: Request, max_bytes: int) -> None:
    """Let this request's body be up to ``max_bytes`` (call before reading it)."""
    request.scope[_LIMIT_KEY] = max_bytes


def body_limit(scope: Scope) -> int:
    """The body cap in force for this request (``BodyLimit`` set it)."""
    limit: int = scope[_LIMIT_KEY]
    return limit


def content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class GuardedRoute(APIRoute):
    """An APIRoute that checks its path, query and JSON body before FastAPI parses them."""

    @staticmethod
    async def answer_error(request: Request, exc: Exception) -> Response:
        """This route's answer to an exception its endpoint raised (``genkeep.api.hot``)."""
        return await handler_answer(request, exc)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        has_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            body = await checked_body(request, has_body=has_body)
            if body is not Undefined and not isinstance(body, bytes):
                request._json = body  # Starlette keeps the parsed JSON for FastAPI
            return await handler(request)

        return guarded


async def checked_body(request: Request, *, has_body: bool) -> Any:
    """The guard's checks of path, query and body; the body as FastAPI hands it on to
    validation: parsed JSON, the raw bytes of another media type, or Undefined if empty."""
    for name, value in request.path_params.items():
        check_text(value, ("path", name))
    if request.scope.get("query_string"):  # parsing an empty one still costs
        for name, value in request.query_params.multi_items():
            check_text(name, ("query",))
            check_text(value, ("query", name))
    if not has_body:
        return Undefined
    # Read here, whatever the type: FastAPI would turn a 413 met while it reads into a 400.
    body = await request.body()
    if not body:
        return Undefined
    if is_json(request.headers.get("content-type")):
        return parse_json(body)
    return body


def is_json(content_type: str | None) -> bool:
    # The same test FastAPI applies before it parses a body as JSON. Clients send a handful
    # of distinct headers, and parsing one as a MIME message costs more than a cache hit's
    # JSON work, so the verdicts are remembered.
    if not content_type:
        return False
    return _is_json_type(content_type)


@functools.lru_cache(maxsize=256)
def _is_json_type(content_type: str) -> bool:
    message = MimeMessage()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def parse_json(body: bytes) -> Any:
    """The body as JSON, refused (with the field named) if the database could not hold it."""
    try:
        text = body.decode("utf-8-sig")
        # One decoder: json.loads with hooks would build a new one per request.
        value = _DECODER.decode(text)
    except RecursionError:
        raise MalformedRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except _NotFinite as exc:
        raise InvalidText(f"body: {exc} is not a JSON number", loc=["body"]) from None
    except ValueError as exc:
        # Invalid JSON, invalid UTF-8, or an integer longer than Python converts.
        raise InvalidJson(
            "the request body is not valid JSON",
            errors=[{"loc": ["body"], "msg": str(exc)[:200], "type": "json_invalid"}],
        ) from None
    # The decoder refuses raw control characters and UTF-8 refuses surrogates, so a NUL or a
    # lone surrogate reaches a string only through a \u escape; and nesting takes brackets.
    # A body with neither (most of them) has nothing the walk could find.
    if "\\u" in text or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        check_tree(value)
    return value


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> float:
    raise _NotFinite(name)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(text[:40])
    return number


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def check_tree(value: Any) -> None:
    """Walk parsed JSON without recursion; the first bad string or depth is refused."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ("body",))]
    while stack:
        node, loc = stack.pop()
        if len(loc) > MAX_JSON_DEPTH + 1:
            raise MalformedRequest(
                f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                loc=[str(p) for p in loc[:8]],
            )
        if isinstance(node, str):
            check_text(node, loc)
        elif isinstance(node, dict):
            for key, item in node.items():
                check_text(key, loc)
                stack.append((item, (*loc, key)))
        elif isinstance(node, list):
            stack.extend((item, (*loc, index)) for index, item in enumerate(node))


def check_text(text: str, loc: tuple[str | int, ...]) -> None:
    """Refuse NUL and lone surrogates: PostgreSQL (and UTF-8) cannot store them."""
    if "\x00" in text:
        _refuse(loc, "must not contain the NUL character (U+0000)", "string_nul")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            _refuse(loc, "must not contain a lone surrogate (U+D800-U+DFFF)", "string_surrogate")


def _refuse(loc: tuple[str | int, ...], msg: str, kind: str) -> None:
    where = ".".join(str(p)[:40] for p in loc[:8])
    raise InvalidText(
        f"{where}: {msg}",
        errors=[{"loc": [str(p)[:40] for p in loc[:8]], "msg": msg, "type": kind}],
    )
