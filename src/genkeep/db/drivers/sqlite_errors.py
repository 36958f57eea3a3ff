"""When SQLite is unavailable rather than the statement wrong: an outage (503), not a bug."""

from __future__ import annotations

import sqlite3

from genkeep.db.drivers.errors import causes

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


def unavailable(error: BaseException) -> bool:
    """Whether the SQLite file is gone, unreadable, locked or broken (by its result code;
    a statement's own error, such as a syntax error, is a bug)."""
    for cause in causes(error):
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
