"""Every answer carries ``x-request-id``: the request's W3C trace id, the one its audit
events record, so a client's error report finds the server's log and events."""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.telemetry.tracing import current_trace_id

TRACE_ID = "genkeep.trace_id"
_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_ALL_ZERO = b"0" * 32


def trace_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The trace id of a valid ``traceparent`` header, else a new one."""
    for name, value in headers:
        if name == b"traceparent":
            match = _TRACEPARENT.match(value)
            if match and match.group(1) != _ALL_ZERO:
                return match.group(1).decode()
            break
    return os.urandom(16).hex()


class RequestId:
    """ASGI middleware, outermost but for the tracing one: picks the trace id and sends it
    on the answer. ``from_span``: the trace id is the SERVER span's (tracing on), so the
    answer, the audit log and the exported trace name one id."""

    def __init__(self, app: ASGIApp, *, from_span: bool = False) -> None:
        self.app = app
        self.from_span = from_span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = (
            scope.get(TRACE_ID)  # the SERVER span's, set by the tracing middleware
            or (self.from_span and current_trace_id())
            or trace_id_of(scope["headers"])
        )
        scope[TRACE_ID] = trace_id
        header = (b"x-request-id", trace_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new list: a response may send the list it keeps as its own headers.
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
