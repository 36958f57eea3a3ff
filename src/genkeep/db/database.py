"""The database a process uses: its driver (db/drivers/), engine and sessions."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from genkeep.db.drivers import Driver, open_driver
from genkeep.db.drivers.base import WRITE_OPTION
from genkeep.db.models import Base
from genkeep.db.url import async_url, redacted

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """The database's driver, its engine and the session factory over it."""

    def __init__(
        self,
        url: str | URL,
        *,
        pool_size: int = 10,
        echo: bool = False,
        statement_timeout_s: float | None = None,
    ) -> None:
        """``statement_timeout_s`` bounds every statement and lock wait (unset: the
        driver's default; migrations and admin commands run without the serving bound)."""
        self.url = async_url(str(url)) if isinstance(url, str) else url
        self.driver: Driver = open_driver(
            self.url,
            Base.metadata.tables,
            pool_size=pool_size,
            echo=echo,
            statement_timeout_s=statement_timeout_s,
        )
        self.engine: AsyncEngine = self.driver.engine
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

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
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read-only session whose statements all see the database as of its first read."""
        async with self.engine.connect() as connection:
            options = self.driver.snapshot_options()
            if options:
                await connection.execution_options(**options)
            async with AsyncSession(bind=connection) as session, session.begin():
                yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    def describe(self) -> str:
        return redacted(self.url)

    async def dispose(self) -> None:
        await self.driver.close()


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
