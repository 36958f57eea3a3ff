"""The route class of the hot routes (``/v1/generate``, ``/v1/chat/completions``).

A cache hit is one indexed read, and FastAPI's dependency solving, its exit stacks and the
exception layer it wraps around every route cost more than that read. ``HotRoute`` is a
route like any other (the router finds it, the OpenAPI document is built from its
signature), whose handler does only what its route needs: the guard's checks
(``genkeep.api.guard``), the dependencies it knows (``deps.RESOLVERS``), header parameters,
the body model, the endpoint, and the route's own answer to an error, all with FastAPI's
own validation functions. A route with anything it would skip is refused at start-up.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from fastapi import APIRouter, Request, Response, params
from fastapi.dependencies.utils import request_body_to_args
from fastapi.exceptions import RequestValidationError
from pydantic_core import PydanticUndefined as Undefined
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from genkeep.api.deps import RESOLVERS
from genkeep.api.guard import GuardedRoute, checked_body
from genkeep.api.openai_errors import OpenAIRoute

_Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class UnservableRoute(TypeError):
    """A route declares something ``HotRoute``'s handler would not do."""


class HotRoute(GuardedRoute):
    """A guarded route served by one lean handler; its errors answer as ``GuardedRoute``'s."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.max_body_size is not None:
            raise UnservableRoute(f"{path}: HotRoute cannot serve max_body_size (BodyLimit does)")
        handler = self.get_route_handler()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # Without request_response's exit stacks (no dependency here has a yield) and
            # its exception layer (the handler answers its own errors).
            response = await handler(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app

    def get_route_handler(self) -> _Handler:
        resolvers = _resolvers(self)
        headers = _header_names(self)
        endpoint: Callable[..., Awaitable[Response]] = self.dependant.call  # type: ignore[assignment]
        body_params = self.dependant.body_params
        body_field = body_params[0]
        request_name = self.dependant.request_param_name
        overrides = getattr(self.dependency_overrides_provider, "dependency_overrides", None)
        answer_error = self.answer_error
        path = self.path

        async def hot(request: Request) -> Response:
            try:
                if overrides:
                    raise UnservableRoute(f"{path}: HotRoute does not apply dependency_overrides")
                body = await checked_body(request, has_body=True)
                # FastAPI's order: the dependencies (the owner) first, then the body.
                values = {name: await resolve(request) for name, resolve in resolvers}
                for name, header in headers:
                    values[name] = request.headers.get(header)
                if body is Undefined:  # FastAPI's own answer to a missing body
                    _, errors = await request_body_to_args(
                        body_fields=body_params, received_body=body, embed_body_fields=False
                    )
                    raise RequestValidationError(errors, body=None)
                values[body_field.name], errors = body_field.validate(body, {}, loc=("body",))
                if errors:
                    raise RequestValidationError(errors, body=body)
                if request_name is not None:
                    values[request_name] = request
                return await endpoint(**values)
            except Exception as exc:
                return await answer_error(request, exc)

        return hot


class OpenAIHotRoute(HotRoute, OpenAIRoute):
    """A hot route whose errors answer in OpenAI's shape (``OpenAIRoute``)."""


class HotPaths:
    """ASGI middleware, the path lookup in front of the router: a request for a hot route
    goes straight to it, as the router would send it, past the route table and the
    exception and exit-stack layers a HotRoute does without. The rest goes on to the app."""

    def __init__(self, app: ASGIApp, *, router: APIRouter) -> None:
        self.app = app
        # Built with the middleware stack, on the first request: every route is in by then.
        # A hot route has no path parameters (HotRoute refuses them), so what the router's
        # match would add to the scope is the same on every request: worked out once here.
        self.routes: dict[str, tuple[HotRoute, frozenset[str], Mapping[str, Any]]] = {}
        for route in router.routes:
            if isinstance(route, HotRoute):
                match, child = route.matches({"type": "http", "path": route.path, "method": ""})
                assert match is not Match.NONE, route.path
                self.routes[route.path] = (route, frozenset(route.methods or ()), child)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if found is not None:
            route, methods, child = found
            if scope["method"] in methods:  # else the router answers 405
                scope.update(child)
                await route.app(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _resolvers(route: HotRoute) -> tuple[tuple[str, Callable[[Request], Awaitable[Any]]], ...]:
    """The route's dependencies as (name, resolver); UnservableRoute for anything the lean
    handler would skip."""
    dependant = route.dependant

    def refuse(what: str) -> UnservableRoute:
        return UnservableRoute(f"{route.path}: HotRoute cannot serve {what}")

    for kind, found in (
        ("path parameters", dependant.path_params),
        ("query parameters", dependant.query_params),
        ("cookie parameters", dependant.cookie_params),
    ):
        if found:
            raise refuse(f"{kind} ({', '.join(f.name for f in found)})")
    special = {
        "a BackgroundTasks parameter": dependant.background_tasks_param_name,
        "a Response parameter": dependant.response_param_name,
        "a WebSocket parameter": dependant.websocket_param_name,
        "an HTTPConnection parameter": dependant.http_connection_param_name,
        "a SecurityScopes parameter": dependant.security_scopes_param_name,
    }
    for what, name in special.items():
        if name is not None:
            raise refuse(f"{what} ({name})")
    body = route.body_field
    if len(dependant.body_params) != 1 or route._embed_body_fields or body is None:
        raise refuse("anything but one JSON body model")
    if isinstance(body.field_info, params.Form) or not body.field_info.is_required():
        raise refuse("a form body or an optional one")
    endpoint = dependant.call
    returns = typing.get_type_hints(endpoint).get("return") if endpoint else None
    if not inspect.iscoroutinefunction(endpoint) or not (
        inspect.isclass(returns) and issubclass(returns, Response)
    ):
        raise refuse("an endpoint that is not a coroutine function returning a Response")
    resolvers = []
    for sub in dependant.dependencies:
        resolve = RESOLVERS.get(sub.call) if sub.call is not None else None
        if resolve is None or sub.name is None:
            raise refuse(f"the dependency {getattr(sub.call, '__name__', sub.call)!r}")
        resolvers.append((sub.name, resolve))
    return tuple(resolvers)


def _header_names(route: HotRoute) -> tuple[tuple[str, str], ...]:
    """(parameter, header name) of each header parameter; only an optional string, which
    FastAPI's validation would pass on unchanged, is served."""
    found = []
    for field in route.dependant.header_params:
        info = field.field_info
        plain = (
            info.annotation == (str | None)
            and info.default is None
            and not info.metadata
            and info.validation_alias is None
        )
        if not plain:
            raise UnservableRoute(
                f"{route.path}: HotRoute serves a header parameter only as an optional str "
                f"without validation alias or constraints, not {field.name!r}"
            )
        found.append((field.name, field.alias))  # FastAPI's header name (cache-control)
    return tuple(found)
