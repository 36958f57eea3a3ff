"""Database drivers: one class per database behind one interface (``Driver``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Table
from sqlalchemy.engine import URL

from genkeep.db.drivers.base import Driver

__all__ = ["Driver", "open_driver"]


def open_driver(
    url: URL,
    tables: Mapping[str, Table],
    *,
    pool_size: int = 10,
    echo: bool = False,
    statement_timeout_s: float | None = None,
) -> Driver:
    """The driver for ``url``'s database: the one place that asks which database it is.

    Each driver is imported on demand, so a process loads only its own (asyncpg stays
    unloaded for a SQLite file).
    """
    name = url.get_backend_name()
    if name == "postgresql":
        from genkeep.db.drivers.postgresql import PostgresDriver

        return PostgresDriver(
            url, pool_size=pool_size, echo=echo, statement_timeout_s=statement_timeout_s
        )
    if name == "sqlite":
        from genkeep.db.drivers.sqlite import SqliteDriver

        return SqliteDriver(
            url, tables, pool_size=pool_size, echo=echo, statement_timeout_s=statement_timeout_s
        )
    raise ValueError(f"no driver for the database {name!r}")
