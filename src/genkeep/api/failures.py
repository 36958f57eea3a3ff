"""The last line of defence: any exception a route lets through becomes a problem+json answer.

Starlette's catch-all handler answers a 500 and then re-raises, and the server closes the
kept-alive connection, so a client's *next* request on it got no answer at all. This
boundary answers and swallows instead: a database that is down or unreachable is a 503
with Retry-After, anything else a generic 500 whose log names the route and the code path
but carries no user content (no exception messages, which may quote SQL parameters).
"""

from __future__ import annotations

import logging
import traceback

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.api.outage import database_unavailable
from genkeep.api.problems import problem

log = logging.getLogger(__name__)


class FailureBoundary:
    """ASGI middleware: unhandled errors answer 503 or 500 and the connection stays open."""

    def __init__(self, app: ASGIApp, *, retry_after_s: int) -> None:
        self.app = app
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # The client went away while its request was read: nobody to answer, no error.
            log.debug("client disconnected on %s", _route(scope))
        except Exception as exc:
            if started:
                # Half an answer is out; the only honest end is to drop the connection.
                raise
            instance = scope.get("path", "")
            if database_unavailable(scope["app"], exc):
                log.warning("database unavailable on %s (%s)", _route(scope), type(exc).__name__)
                response = problem(
                    503,
                    "database-unavailable",
                    "The database is unavailable; retry shortly",
                    "the database could not be reached; retry after the given delay",
                    instance,
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            else:
                log.error("unhandled error on %s\n%s", _route(scope), scrubbed_traceback(exc))
                response = problem(
                    500,
                    "internal",
                    "Internal server error",
                    "an unexpected error occurred; it has been logged",
                    instance,
                )
            await response(scope, receive, send)


def _route(scope: Scope) -> str:
    """The method and route template (``/v1/jobs/{job_id}``), never the ids a client sent."""
    route = scope.get("route")
    return f"{scope.get('method', '?')} {getattr(route, 'path', '(no route)')}"


def scrubbed_traceback(exc: BaseException) -> str:
    """Frames and exception types of the whole chain, without any exception's message."""
    parts: list[str] = []
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__))
        kind = type(current)
        parts.append(
            f"Traceback (most recent call last):\n{frames}{kind.__module__}.{kind.__qualname__}"
        )
        current = current.__cause__ or current.__context__
    return "\n\nwhich led to:\n\n".join(reversed(parts))
