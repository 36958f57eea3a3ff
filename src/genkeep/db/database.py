"""The async engine and sessions, configured per backend in this one place."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from genkeep.db.driver import DriverPool
from genkeep.db.reader import Reader, asyncpg_connect_kwargs, open_reader
from genkeep.db.url import async_url, is_sqlite, redacted
from genkeep.errors import ConfigurationError

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "genkeep_write"  # execution option marking a write transaction

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue
    # instead of failing; foreign keys are off by default in SQLite.
    # busy_timeout first: switching a new file to WAL needs it alone, and another process
    # may be creating it at that moment.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # The driver's own implicit BEGIN is turned off so that _sqlite_begin decides the mode.
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    # Write transactions take the write lock up front (BEGIN IMMEDIATE), waiting for it under
    # busy_timeout. A deferred one that reads first and writes later cannot wait: SQLite
    # fails its lock upgrade at once with "database is locked" if another writer got in.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def reader_size(pool_size: int) -> int:
    """Connections of the cache-hit reader: one short SELECT each, so a few serve thousands
    of hits a second; under a burst, reads wait for one instead of opening more."""
    return min(pool_size, 4)


class Database:
    """One engine and session factory; ``backend`` is 'sqlite' or 'postgresql'."""

    def __init__(self, url: str | URL, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = async_url(str(url)) if isinstance(url, str) else url
        self.backend = self.url.get_backend_name()
        # Parameters are user content: an error's message (and so a log) must not carry them.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if is_sqlite(self.url):
            if self.url.database and self.url.database != ":memory:":
                from pathlib import Path

                # Not made here: only the data folder is genkeep's to create (services).
                folder = Path(self.url.database).absolute().parent
                if not folder.is_dir():
                    raise ConfigurationError(
                        f"no folder {folder} for the database {self.url.database}: "
                        "create it, or name a file in an existing folder"
                    )
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            # No pre-ping: with asyncpg it is a round trip per checkout (BEGIN; ROLLBACK).
            # Connections are recycled instead, and a dropped one fails one request.
            # The cache-hit reader's and the task queue's connections come out of the overflow
            # allowance, so a process still holds at most three times pool_size connections.
            overflow = pool_size * 2 - 2 * reader_size(pool_size)
            kwargs.update(pool_size=pool_size, max_overflow=overflow, pool_recycle=300)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if is_sqlite(self.url):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The cache-hit path's own connections (db/reader.py); opened on first use.
        self.reader: Reader | None = open_reader(
            self.url, self.engine.dialect, reader_size(pool_size), SQLITE_BUSY_TIMEOUT_MS / 1000
        )
        # The task queue's self-contained statements (db/driver.py); PostgreSQL only.
        self.driver: DriverPool | None = None
        if self.backend == "postgresql":
            connect = asyncpg_connect_kwargs(self.url, self.engine.dialect)
            self.driver = DriverPool(connect, reader_size(pool_size))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        async with self.sessions() as session, session.begin():
            await session.connection(execution_options={WRITE_OPTION: True})
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a write transaction, for hot paths that skip the ORM."""
        async with self.engine.connect() as connection:
            await connection.execution_options(**{WRITE_OPTION: True})
            async with connection.begin():
                yield connection

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        """An asyncpg connection in autocommit, for self-contained statements (PostgreSQL)."""
        if self.driver is None:
            raise RuntimeError(f"no driver pool on {self.backend}")
        async with self.driver.connection() as connection:
            yield connection

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read-only session whose statements all see the database as of its first read.

        SQLite's read transaction (WAL) is one snapshot already; PostgreSQL's default READ
        COMMITTED takes a new one per statement, so it asks for REPEATABLE READ.
        """
        async with self.engine.connect() as connection:
            if self.backend == "postgresql":
                await connection.execution_options(isolation_level="REPEATABLE READ")
            async with AsyncSession(bind=connection) as session, session.begin():
                yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    def describe(self) -> str:
        return redacted(self.url)

    async def dispose(self) -> None:
        if self.reader is not None:
            await self.reader.close()
        if self.driver is not None:
            await self.driver.close()
        await self.engine.dispose()


def completes_when_cancelled(
    write: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Let a write commit or roll back whole even if its caller is cancelled mid-statement.

    The caller still sees the CancelledError. Without this, a cancel that lands between a
    SQLite ``UPDATE ... RETURNING`` and its fetch leaves the half-read statement holding
    the database's write lock until garbage collection (every other writer then fails with
    "database is locked"); on PostgreSQL it costs a terminated connection.
    """

    @functools.wraps(write)
    async def shielded(*args: P.args, **kwargs: P.kwargs) -> T:
        inner = asyncio.create_task(write(*args, **kwargs))
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            inner.add_done_callback(_log_orphaned_failure)
            raise

    return shielded


def _log_orphaned_failure(finished: asyncio.Future[Any]) -> None:
    if not finished.cancelled() and finished.exception() is not None:
        log.warning("a write finished after its caller was cancelled: %r", finished.exception())
