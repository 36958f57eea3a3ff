"""PostgreSQL administration for tests and benchmarks: throwaway databases on a server."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def dsn(url: str, database: str | None = None) -> str:
    """``url`` as a plain libpq URL (optionally for another database), password kept."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def admin(url: str, sql: str, connect_s: float = 10) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the server at ``url``."""
    connection = await asyncpg.connect(dsn(url), timeout=connect_s)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
