"""Server-Sent Events over a change log: replay after ``Last-Event-ID``, then follow."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from genkeep.api.openapi import documented
from genkeep.core.types import INT64_MAX
from genkeep.errors import BadInput

KEEP_ALIVE_S = 15  # a comment line, so proxies do not close a quiet stream

# The parameters every event stream takes.
Interval = Annotated[float, Query(ge=0.05, le=10, description="Poll interval (s).")]
# The pattern states what event_id refuses (its own check answers the refusal, bad-input).
LastEventId = Annotated[
    str | None,
    Header(
        description="The `id` of the last event received; resume after it "
        f"(digits, at most {INT64_MAX}).",
        json_schema_extra={"pattern": "^[0-9]{0,19}$"},
    ),
]


def event_responses(stopped: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of an event route; ``stopped`` says when it answers 204."""
    return documented(
        404,
        422,
        extra={
            200: {"content": {"text/event-stream": {}}},
            204: {"description": f"{stopped} and has no change after Last-Event-ID."},
        },
    )


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """The response of an event stream: not cached, not buffered by a proxy."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


class Change(Protocol):
    @property
    def seq(self) -> int: ...


C = TypeVar("C", bound=Change)


def event_id(value: str | None) -> int:
    """The ``Last-Event-ID`` header as a log position (0: from the start)."""
    if value is None or not value.strip():
        return 0
    text = value.strip()
    # ASCII digits only ("²" is a digit to str.isdigit), and within the column's range.
    if not (text.isascii() and text.isdigit()) or int(text) > INT64_MAX:
        raise BadInput("Last-Event-ID must be the id of an event this stream sent")
    return int(text)


async def follow_log(
    request: Request,
    *,
    event: str,
    after: int,
    first: list[C],
    read: Callable[[int], Awaitable[list[C]]],
    watch: AbstractAsyncContextManager[asyncio.Event],
    encode: Callable[[C], str],
    ends: Callable[[C], bool],
    interval: float,
) -> AsyncIterator[str]:
    """Every change after ``after`` (``first`` is the page read from there), in order, once;
    ends after a change that ``ends`` when nothing follows it. ``watch`` wakes the next read
    early (NOTIFY); without a wake-up it reads again every ``interval`` seconds."""
    page, idle = first, 0.0
    async with watch as changed:
        while True:
            for change in page:
                yield f"id: {change.seq}\nevent: {event}\ndata: {encode(change)}\n\n"
                after, idle = change.seq, 0.0
            if page and ends(page[-1]):
                page = await read(after)
                if not page:
                    return
                continue
            if await request.is_disconnected():
                return
            if idle >= KEEP_ALIVE_S:
                idle = 0.0
                yield ": keep-alive\n\n"
            # Cleared before the read: a NOTIFY that arrives during it wakes the next wait.
            changed.clear()
            page = await read(after)
            if not page:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), interval)
                idle += interval


async def change_events(
    request: Request,
    *,
    event: str,
    last_event_id: str | None,
    read: Callable[[int], Awaitable[list[C]]],
    stopped: bool,
    watch: AbstractAsyncContextManager[asyncio.Event],
    encode: Callable[[C], str],
    ends: Callable[[C], bool],
    interval: float,
) -> Response:
    """The answer of an event route: 204 when the entity is ``stopped`` and nothing follows
    ``Last-Event-ID`` (an EventSource then stops reconnecting), else the followed log."""
    after = event_id(last_event_id)
    first = await read(after)
    if not first and stopped:
        return Response(status_code=204)
    return event_stream(
        follow_log(
            request,
            event=event,
            after=after,
            first=first,
            read=read,
            watch=watch,
            encode=encode,
            ends=ends,
            interval=interval,
        )
    )
