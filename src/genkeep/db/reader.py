"""Hot reads on the driver itself: one self-contained SELECT, in autocommit, no SQLAlchemy.

A cache hit is one indexed row. Through SQLAlchemy it paid a pool checkout, ``BEGIN`` and
``ROLLBACK`` round trips and greenlet switches around it, and on SQLite a hop to
aiosqlite's thread: four times the query. A lone SELECT needs no transaction (it reads one
consistent snapshot on its own), so the few statements of the hot path run here instead:

- PostgreSQL: an asyncpg pool of fixed maximum size, filled on demand and never trimmed
  while in use, so a busy server does not open connections; nothing to reset on release
  (a SELECT leaves no session state).
- SQLite: one ``sqlite3`` connection used on the event loop. A WAL read of one row costs
  less than the thread hop; a reader waits for no writer, and in the rare case the file
  is busy (WAL recovery) the read falls back to a thread that may wait.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from genkeep.db.driver import DriverPool

Row = Mapping[str, Any]
# URL query options SQLAlchemy's asyncpg dialect consumes itself; asyncpg.connect refuses them.
_SQLALCHEMY_ONLY = (
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
    "async_fallback",
)


class ReadStatement:
    """A SELECT compiled once per dialect, with its parameters in positional order."""

    def __init__(self, query: ClauseElement) -> None:
        self.query = query
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    def compiled(self, backend: str) -> tuple[str, tuple[str, ...]]:
        found = self._compiled.get(backend)
        if found is None:
            dialect: Dialect = (
                pg_asyncpg.dialect() if backend == "postgresql" else sqlite_dialect()  # type: ignore[no-untyped-call]
            )
            compiled = cast(SQLCompiler, self.query.compile(dialect=dialect))
            found = self._compiled[backend] = (compiled.string, tuple(compiled.positiontup or ()))
        return found


class Reader(Protocol):
    """Runs a ReadStatement and returns its first row (column name -> driver value)."""

    async def fetch_one(self, statement: ReadStatement, params: Mapping[str, Any]) -> Row | None:
        """The first row, or None."""

    async def close(self) -> None:
        """Release the connections."""


def _ordered(names: Sequence[str], params: Mapping[str, Any]) -> list[Any]:
    return [params[name] for name in names]


class PostgresReader:
    def __init__(self, connect_kwargs: Mapping[str, Any], size: int) -> None:
        self._driver = DriverPool(connect_kwargs, size, json_codecs=False)

    async def fetch_one(self, statement: ReadStatement, params: Mapping[str, Any]) -> Row | None:
        sql, names = statement.compiled("postgresql")
        async with self._driver.connection() as connection:
            row: Row | None = await connection.fetchrow(sql, *_ordered(names, params))
        return row

    async def close(self) -> None:
        await self._driver.close()


class SqliteReader:
    def __init__(self, path: str, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._connection: sqlite3.Connection | None = None

    def _connect(self, timeout: float) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA query_only=ON")
        return connection

    async def fetch_one(self, statement: ReadStatement, params: Mapping[str, Any]) -> Row | None:
        sql, names = statement.compiled("sqlite")
        values = _ordered(names, params)
        if self._connection is None:
            self._connection = self._connect(timeout=0)
        try:
            return _first(self._connection, sql, values)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        return await asyncio.to_thread(self._fetch_waiting, sql, values)

    def _fetch_waiting(self, sql: str, values: list[Any]) -> Row | None:
        connection = self._connect(timeout=self._busy_timeout_s)
        try:
            return _first(connection, sql, values)
        finally:
            connection.close()

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()


def _first(connection: sqlite3.Connection, sql: str, values: list[Any]) -> Row | None:
    cursor = connection.execute(sql, values)
    try:
        row: Row | None = cursor.fetchone()
        return row
    finally:
        cursor.close()  # resets the statement: an unfinished one would hold its snapshot open


def asyncpg_connect_kwargs(url: URL, dialect: Dialect) -> dict[str, Any]:
    """What asyncpg.connect needs for ``url``, as SQLAlchemy's asyncpg dialect reads it."""
    _, kwargs = dialect.create_connect_args(url)
    for name in _SQLALCHEMY_ONLY:
        kwargs.pop(name, None)
    return dict(kwargs)


def open_reader(url: URL, dialect: Dialect, size: int, busy_timeout_s: float) -> Reader | None:
    """The hot-path reader for this database, or None where only the engine can reach it
    (an in-memory SQLite database exists only inside the engine's own connection)."""
    if url.get_backend_name() == "postgresql":
        return PostgresReader(asyncpg_connect_kwargs(url, dialect), size)
    database = url.database or ""
    if not database or database.startswith("file:") or ":memory:" in database or url.query:
        return None
    return SqliteReader(str(Path(database).expanduser()), busy_timeout_s)
