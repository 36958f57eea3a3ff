"""The hot routes (``/v1/generate``, ``/v1/chat/completions``) served without the router.

A cache hit is one indexed read, and Starlette's exception and exit-stack layers, the
route table and FastAPI's dependency solving cost more than that read (issue 9). For a
request to a hot route this middleware does what those layers would: the guard's checks
(``genkeep.api.guard``), the body model's validation, the route's endpoint, and the route's
own answer to an error it raises. A request it cannot take as it is (no JSON body of a
declared length, a query string, a body the guard or the model refuses) goes on to the app
with its body replayed, so every refusal is answered by the route as it always was: one
route table, one set of error answers, one OpenAPI document.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.api.guard import GuardedRoute, body_limit, content_length, is_json, parse_json
from genkeep.errors import GenkeepError


@dataclass(frozen=True, slots=True)
class HotRoute:
    """A route whose endpoint takes ``(body, request)`` and returns a Response, with its
    body model (read from the endpoint's signature once, at start-up)."""

    route: GuardedRoute
    body: type[BaseModel]

    @classmethod
    def of(cls, route: GuardedRoute) -> HotRoute:
        body = typing.get_type_hints(route.endpoint)["body"]
        assert inspect.isclass(body) and issubclass(body, BaseModel), route.path
        return cls(route, body)


class HotRoutes:
    """ASGI middleware: POSTs to the hot routes are answered here, the rest by the app."""

    def __init__(self, app: ASGIApp, *, routes: dict[str, HotRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if hot is None or scope["method"] != "POST" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        length = content_length(scope)
        # A body of undeclared length, or over the cap, is the app's to refuse (413).
        if (
            length is None
            or length > body_limit(scope)
            or not is_json(request.headers.get("content-type"))
        ):
            await self.app(scope, receive, send)
            return
        body = await request.body()
        try:
            model = hot.body.model_validate(parse_json(body))
        except (GenkeepError, ValidationError):
            # The route phrases the refusal (problem+json, or OpenAI's error object).
            await self.app(scope, _replay(body, receive), send)
            return
        route = scope["route"] = hot.route  # the route the failure boundary's log names
        try:
            response: Response = await route.endpoint(model, request)
        except Exception as exc:
            response = await route.answer_error(request, exc)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then what the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
