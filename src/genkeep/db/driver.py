"""The asyncpg pool of the task queue's self-contained statements (PostgreSQL only).

A claim, a completion or a batch of submissions is one statement, atomic on its own, so
it runs in autocommit on a plain asyncpg connection. Borrowing SQLAlchemy's pooled
connection for it cost a greenlet switch and the pool's checkout and reset-on-return
bookkeeping: as much Python as the statement itself on a no-op task. This pool is filled
on demand, never trimmed while in use, and resets nothing on release (an autocommit
statement leaves no session state). JSON columns decode to Python and JSON parameters
are given as serialized text, as on SQLAlchemy's own asyncpg connections.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Autocommit statements leave nothing to reset (asyncpg's default is a round trip)."""


async def _json_codecs(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=str, decoder=json.loads, schema="pg_catalog", format="text"
        )


def refuses_a_row(error: BaseException) -> bool:
    """Whether the server refused the statement for its data (a constraint, a bad value),
    not for want of a connection: retried row by row, only the offending row fails."""
    return isinstance(error, (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError))


def is_closed(connection: asyncpg.Connection) -> bool:
    """Whether the session is over; asyncpg's pool takes a closed connection back at once,
    and every call on it then raises InterfaceError."""
    try:
        closed: bool = connection.is_closed()
    except asyncpg.InterfaceError:
        return True
    return closed


class DriverPool:
    """At most ``size`` asyncpg connections, opened on first use."""

    def __init__(
        self, connect_kwargs: Mapping[str, Any], size: int, *, json_codecs: bool = True
    ) -> None:
        self._kwargs = dict(connect_kwargs)
        self._size = size
        self._init = _json_codecs if json_codecs else None
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None

    async def pool(self) -> asyncpg.Pool:
        """The pool, opened on first use."""
        return self._pool or await self._opened()

    async def _opened(self) -> asyncpg.Pool:
        if self._pool is None:
            self._opening = self._opening or asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        min_size=0,
                        max_size=self._size,
                        max_inactive_connection_lifetime=300.0,
                        init=self._init,
                        reset=_no_reset,
                        **self._kwargs,
                    )
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._opened()
        connection = await pool.acquire()
        try:
            yield connection
        except asyncpg.PostgresError:
            raise  # the server refused the statement; the connection is fine
        except BaseException as exc:
            if not is_closed(connection):
                # Cut off mid-statement (cancelled): the protocol state is unknown.
                connection.terminate()
            elif isinstance(exc, Exception):
                # The server ended the session (terminated, the database dropped), maybe while
                # it sat idle in the pool: asyncpg then fails the statement with a client-side
                # error ("another operation is in progress") that says nothing of the cause.
                raise ConnectionResetError("the database server closed the connection") from exc
            raise
        finally:
            await pool.release(connection)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
