"""What both drivers share in telling an outage from a bug: the error's chain of causes,
where it was raised, and a connection SQLAlchemy or the network gave up on.

An error counts wherever it was raised: through SQLAlchemy (which wraps the driver's error,
keeping its SQLSTATE or result code), or by a raw asyncpg pool or ``sqlite3`` connection
(which do not). Each driver adds its database's own codes (``Driver.is_unavailable``).
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import exc as sa_exc


def lost_connection(error: BaseException) -> bool:
    """Whether SQLAlchemy, the pool or the network gave up on the connection."""
    for cause in causes(error):
        # SQLAlchemy judged the connection dead (its dialect's is_disconnect).
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        # The pool waited its timeout for a connection: every connection is stuck.
        if isinstance(cause, sa_exc.TimeoutError):
            return True
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
    return False


def raised_in(error: BaseException, module: str) -> bool:
    """Whether ``error`` passed through a frame of ``module`` (say, asyncpg's log-in)."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == module:
            return True
        tb = tb.tb_next
    return False


def causes(error: BaseException) -> Iterator[BaseException]:
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
