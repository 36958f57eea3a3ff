"""Throwaway, migrated benchmark databases: a SQLite file or a ``genkeep_bench_*`` database."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.postgres import DEFAULT_ADMIN_URL, admin, dsn
from tests.support.server import run_cli


def admin_url() -> str:
    return os.environ.get("GENKEEP_BENCH_DATABASE_URL", DEFAULT_ADMIN_URL)


async def _admin(sql: str) -> None:
    await admin(admin_url(), sql)


def migrate(url: str, data_dir: Path) -> None:
    """``genkeep db upgrade`` as a user runs it, with the same env the servers get."""
    env = {"GENKEEP_DATABASE_URL": url, "GENKEEP_DATA_DIR": str(data_dir)}
    done = run_cli(["db", "upgrade"], env)
    if done.returncode != 0:
        raise RuntimeError(f"genkeep db upgrade failed:\n{done.stdout}\n{done.stderr}")


@contextmanager
def throwaway_database(backend: str, workdir: Path) -> Iterator[str]:
    """A migrated database URL for ``backend``; a PostgreSQL one is dropped even on failure."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        migrate(url, workdir / "var")
        yield url
        return
    name = f"genkeep_bench_{secrets.token_hex(5)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = dsn(admin_url(), name)
        migrate(url, workdir / "var")
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
