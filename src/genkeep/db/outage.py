"""Tell "the database is down, gone or refusing us" apart from a bug, for a 503 instead of a 500.

An error counts wherever it was raised: through SQLAlchemy (which wraps the driver's error,
keeping its SQLSTATE), or by a raw asyncpg pool or ``sqlite3`` connection (which do not).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

# SQLSTATE classes where the server, not the statement, is the trouble: 08 connection
# exception; 28 the login is refused (role gone, NOLOGIN, password); 3D the database does
# not exist (dropped or renamed); 53 insufficient resources (too many connections, disk
# full); 57 operator intervention (shutdown, database dropped, cannot connect now, a
# statement cancelled by an operator or a timeout); 58 the server's own I/O failed.
_UNAVAILABLE_CLASSES = ("08", "28", "3D", "53", "57", "58")
# A read-only transaction refusing a write: a standby after failover, or writes locked out.
_UNAVAILABLE_CODES = frozenset({"25006"})
# Object not in prerequisite state: at log-in, "database does not allow connections"
# (ALTER DATABASE ... ALLOW_CONNECTIONS false); from a statement, a bug.
_UNAVAILABLE_AT_CONNECT = frozenset({"55000"})
_ASYNCPG_CONNECT = "asyncpg.connect_utils"

# SQLite's primary result codes where the file, not the statement, is the trouble: access
# denied, busy or locked by another process, read-only, I/O error, corrupt, disk full,
# cannot be opened (gone, a directory), the lock protocol failed, not a database file.
_SQLITE_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) means the database could not serve the request."""
    return _lost_connection(error) or postgres_unavailable(error) or sqlite_unavailable(error)


def postgres_unavailable(error: BaseException) -> bool:
    """Whether PostgreSQL (or the way to it) is unavailable: by SQLSTATE, asyncpg's or the
    one SQLAlchemy keeps, or a socket error while asyncpg connected."""
    for cause in _chain(error):
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate.startswith(_UNAVAILABLE_CLASSES) or sqlstate in _UNAVAILABLE_CODES:
                return True
            if sqlstate in _UNAVAILABLE_AT_CONNECT and _raised_in(cause, _ASYNCPG_CONNECT):
                return True
        # An unknown host, no route, every address refusing ("Multiple exceptions: ..."):
        # plain OSErrors, not ConnectionErrors.
        if isinstance(cause, OSError) and _raised_in(cause, _ASYNCPG_CONNECT):
            return True
    return False


def sqlite_unavailable(error: BaseException) -> bool:
    """Whether the SQLite file is gone, unreadable, locked or broken (by its result code;
    a statement's own error, such as a syntax error, is a bug)."""
    for cause in _chain(error):
        code = getattr(cause, "sqlite_errorcode", None)
        if isinstance(cause, sqlite3.Error) and isinstance(code, int):
            # Extended codes (SQLITE_IOERR_SHORT_READ, ...) carry the primary one in the low byte.
            if code & 0xFF in _SQLITE_UNAVAILABLE:
                return True
            # The schema was checked at start-up: a table missing now means the file was
            # removed (a new connection then creates an empty one) or replaced. SQLite's
            # messages are never translated.
            return code == sqlite3.SQLITE_ERROR and str(cause).startswith("no such table")
    return False


def _lost_connection(error: BaseException) -> bool:
    for cause in _chain(error):
        # SQLAlchemy judged the connection dead (its dialect's is_disconnect).
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        # The pool waited its timeout for a connection: every connection is stuck.
        if isinstance(cause, sa_exc.TimeoutError):
            return True
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
    return False


def _raised_in(error: BaseException, module: str) -> bool:
    """Whether ``error`` passed through a frame of ``module`` (say, asyncpg's log-in)."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == module:
            return True
        tb = tb.tb_next
    return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, the driver error SQLAlchemy wraps (``orig``) and their explicit causes."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # Only explicit causes: an exception merely raised while handling another is not it.
        for nxt in (current.__cause__, getattr(current, "orig", None)):
            if isinstance(nxt, BaseException):
                pending.append(nxt)
