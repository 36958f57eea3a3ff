"""A SQLite file gone, locked, unreadable or broken is an outage; a statement's own error is a
bug. Every error here is raised by a real sqlite3 connection (and through SQLAlchemy)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from genkeep.api.openai_errors import error_object
from genkeep.db.database import Database
from genkeep.db.drivers.postgresql_errors import unavailable as postgres_unavailable
from genkeep.db.drivers.sqlite_errors import unavailable as sqlite_unavailable


def is_unavailable(error: BaseException) -> bool:
    """The SQLite driver's verdict, as the API asks for it."""
    return _DRIVER.is_unavailable(error)


_DRIVER = Database("sqlite:///:memory:").driver


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "genkeep.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        connection.execute("INSERT INTO t VALUES (1, 'a')")
    connection.close()
    return path


def _raised(action: Callable[[], object]) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        action()
    return caught.value


def _gone(path: Path) -> sqlite3.Error:
    """The file removed, and new connections may not create an empty one in its place."""
    path.unlink()
    return _raised(lambda: sqlite3.connect(f"file:{path}?mode=rw", uri=True).execute("SELECT 1"))


def _a_directory(path: Path) -> sqlite3.Error:
    path.unlink()
    path.mkdir()
    return _raised(lambda: sqlite3.connect(path).execute("SELECT * FROM t"))


def _folder_gone(path: Path) -> sqlite3.Error:
    missing = path.parent / "moved-away" / path.name
    return _raised(lambda: sqlite3.connect(missing).execute("SELECT 1"))


def _locked(path: Path) -> sqlite3.Error:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        writer = sqlite3.connect(path, timeout=0)
        return _raised(lambda: writer.execute("INSERT INTO t VALUES (2, 'b')"))
    finally:
        holder.execute("ROLLBACK")


def _not_a_database(path: Path) -> sqlite3.Error:
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not an SQLite file, " * 200)
    return _raised(lambda: sqlite3.connect(path).execute("SELECT * FROM t"))


def _replaced_by_an_empty_file(path: Path) -> sqlite3.Error:
    """Removed while the server runs: the next connection creates an empty file there."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return _raised(lambda: sqlite3.connect(path).execute("SELECT * FROM t"))


def _read_only(path: Path) -> sqlite3.Error:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return _raised(lambda: connection.execute("INSERT INTO t VALUES (3, 'c')"))


FAULTS = {
    "file gone": _gone,
    "file gone, an empty one in its place": _replaced_by_an_empty_file,
    "path is a directory": _a_directory,
    "folder gone": _folder_gone,
    "locked by another writer": _locked,
    "not a database": _not_a_database,
    "read-only": _read_only,
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_sqlite_file_that_cannot_serve_is_an_outage(fault: str, database: Path) -> None:
    error = FAULTS[fault](database)
    assert sqlite_unavailable(error), (error, getattr(error, "sqlite_errorname", None))
    assert is_unavailable(error)
    assert not postgres_unavailable(error)
    # A chat stream that fails after its headers says so in its error event.
    assert error_object(error, is_unavailable(error))["code"] == "database_unavailable"


BUGS = {
    "syntax error": "SELEC 1",
    "no such column": "SELECT nowhere FROM t",
    "constraint": "INSERT INTO t VALUES (1, 'again')",
    "not null": "INSERT INTO t (id) VALUES (9)",
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_a_statement_s_own_error_is_not_an_outage(bug: str, database: Path) -> None:
    error = _raised(lambda: sqlite3.connect(database).execute(BUGS[bug]))
    assert not is_unavailable(error), (error, getattr(error, "sqlite_errorname", None))
    assert error_object(error, is_unavailable(error))["code"] == "internal"


def test_the_classification_sees_through_sqlalchemy(database: Path) -> None:
    """SQLAlchemy (aiosqlite) wraps the driver's error; its result code still decides."""

    async def run(statement: str) -> BaseException:
        engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        except Exception as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError(f"{statement} succeeded")

    assert not is_unavailable(asyncio.run(run("SELEC 1")))
    _not_a_database(database)
    assert is_unavailable(asyncio.run(run("SELECT * FROM t")))
