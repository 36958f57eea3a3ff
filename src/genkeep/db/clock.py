"""The database's clock: the one clock every lease stamp and expiry comparison uses.

Machines in a cluster drift; a process whose clock runs ahead would see live leases as
expired. So ownership is decided by the database, in the statement that acts on it, and
Python's clock only schedules wake-ups. These two SQL expressions are the seam: each
dialect spells "now" and "now plus n seconds" its own way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from genkeep.db.types import UTCDateTime

# SQLite's time functions give milliseconds; three zeros more make the microsecond text
# that SQLAlchemy writes for DateTime columns, so stored stamps compare as text correctly.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now'{shift}) || '000'"


class db_now(FunctionElement[datetime]):
    """The database's current time (PostgreSQL: the statement's start)."""

    type = UTCDateTime()
    inherit_cache = True


class db_now_plus(FunctionElement[datetime]):
    """The database's current time plus ``seconds`` (a lease's expiry)."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, seconds: Any) -> None:
        shift = seconds if hasattr(seconds, "compile") else literal(float(seconds), Float)
        super().__init__(shift)


@compiles(db_now, "postgresql")
def _pg_now(element: db_now, compiler: Any, **kw: Any) -> str:
    return "statement_timestamp()"


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: Any, **kw: Any) -> str:
    return _SQLITE_NOW.format(shift="")


@compiles(db_now_plus, "postgresql")
def _pg_now_plus(element: db_now_plus, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(statement_timestamp() + CAST({seconds} AS DOUBLE PRECISION) * INTERVAL '1 second')"


@compiles(db_now_plus, "sqlite")
def _sqlite_now_plus(element: db_now_plus, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return _SQLITE_NOW.format(shift=f", ({seconds}) || ' seconds'")
