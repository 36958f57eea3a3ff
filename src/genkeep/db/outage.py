"""Tell "the database is down or unreachable" apart from a bug, for a 503 instead of a 500."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

# SQLSTATE classes of a lost or refused connection: 08 (connection exception) and 57P
# (operator intervention: admin shutdown, crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "57P")


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) means the database could not be reached."""
    for cause in _chain(error):
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        # SQLite's "database is locked" and "unable to open database file" are operational
        # too: the request was fine, the database was not available to serve it.
        if isinstance(cause, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        # The pool waited its timeout for a connection: every connection is stuck.
        if isinstance(cause, sa_exc.TimeoutError):
            return True
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            yield from _chain(orig)
        # Only explicit causes: an exception merely raised while handling another is not it.
        current = current.__cause__
