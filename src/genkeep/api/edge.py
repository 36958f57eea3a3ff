"""The HTTP/1.1 connection itself: limits below the application (uvicorn's httptools protocol).

Without them a client could send a 256 MB header (held in memory, then answered 200) or
leave a request half-sent for ever, and a thousand such connections use up the process's
file descriptors. Here the head of a request is capped (431), must arrive whole within a
deadline (408), and a body that stops arriving is answered 408 (or the connection closed,
once an answer has started). A connection that never sends anything is closed after the
keep-alive period, as an idle one is after a response.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from genkeep.config import Settings, load_settings

log = logging.getLogger(__name__)

_PROBLEM_BASE = "https://genkeep.dev/problems/"


@dataclass(frozen=True)
class EdgeLimits:
    """How much of a request's head is read, and how long the head and the body may take."""

    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(settings.max_header_bytes, settings.header_timeout_s, settings.body_timeout_s)


@functools.cache
def server_limits() -> EdgeLimits:
    """The limits of this server process, read once (uvicorn builds a protocol per connection)."""
    return EdgeLimits.of(load_settings())


def refusal(status: int, code: str, title: str, detail: str) -> bytes:
    """A complete problem+json answer that closes the connection, written below the app."""
    body = json.dumps(
        {"type": _PROBLEM_BASE + code, "title": title, "status": status, "detail": detail}
    ).encode()
    head = [
        STATUS_LINE[status],
        b"content-type: application/problem+json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header cap and read timeouts (``EdgeLimits``)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        limits: EdgeLimits | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits or server_limits()
        self._head_open = True  # the head of the current request is not complete yet
        self._head_seen = 0  # its bytes received so far
        self._head_deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._cancel()
        if self._head_open:
            if not self._head_seen:
                self._head_deadline = self.loop.time() + self.limits.header_timeout_s
            room = self.limits.max_header_bytes - self._head_seen
            if len(data) > room:
                # Parse only up to the cap: a head not complete by then is refused unread.
                self._head_seen += room
                super().data_received(data[:room])
                if self.transport.is_closing():
                    return
                if self._head_open:
                    self._refuse(
                        431,
                        "header-too-large",
                        "Request Header Fields Too Large",
                        f"the request line and headers exceed {self.limits.max_header_bytes} bytes",
                    )
                    return
                data = data[room:]
            else:
                self._head_seen += len(data)
        super().data_received(data)
        if not self.transport.is_closing():
            self._arm()

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_open, self._head_seen = True, 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timeout only when the request was read to its end.
        if self._head_open and not self._head_seen and self.timeout_keep_alive_task is None:
            self._idle()

    def _arm(self) -> None:
        """The timer for what the connection is waiting for now."""
        if self._head_open and self._head_seen:
            self._timer = self.loop.call_at(self._head_deadline, self._head_expired)
        elif not self._head_open:
            self._timer = self.loop.call_later(self.limits.body_timeout_s, self._body_expired)
        elif self.cycle is None or self.cycle.response_complete:
            self._idle()

    def _idle(self) -> None:
        """A connection with nothing sent is closed after the keep-alive period."""
        self._cancel()
        self._timer = self.loop.call_later(self.timeout_keep_alive, self._idle_expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_expired(self) -> None:
        self._timer = None
        if (
            self._head_open
            and not self._head_seen
            and (self.cycle is None or self.cycle.response_complete)
        ):
            self.transport.close()

    def _head_expired(self) -> None:
        self._timer = None
        self._refuse(
            408,
            "request-timeout",
            "Request Timeout",
            f"the request's headers did not arrive within {self.limits.header_timeout_s:g} s",
        )

    def _body_expired(self) -> None:
        self._timer = None
        cycle = self.cycle
        if cycle is None or self._head_open:
            return
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # The app has not asked for more yet: the wait is the server's, not the client's.
            self._timer = self.loop.call_later(self.limits.body_timeout_s, self._body_expired)
            return
        if cycle.response_started:
            self.transport.close()
            return
        self._refuse(
            408,
            "request-timeout",
            "Request Timeout",
            f"the request body stalled for {self.limits.body_timeout_s:g} s",
        )

    def _refuse(self, status: int, code: str, title: str, detail: str) -> None:
        """Answer ``status`` and close; the app, if it has the request, sees a disconnect."""
        self._cancel()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        log.info("%s: %s", status, detail)
        self.transport.write(refusal(status, code, title, detail))
        self.transport.close()
