"""When PostgreSQL is unavailable rather than the statement wrong: an outage (503), not a bug."""

from __future__ import annotations

from genkeep.db.drivers.errors import causes, raised_in

# SQLSTATE classes where the server, not the statement, is the trouble: 08 connection
# exception; 28 the login is refused (role gone, NOLOGIN, password); 3D the database does
# not exist (dropped or renamed); 53 insufficient resources (too many connections, disk
# full); 57 operator intervention (shutdown, database dropped, cannot connect now, a
# statement cancelled by an operator or a timeout); 58 the server's own I/O failed.
_UNAVAILABLE_CLASSES = ("08", "28", "3D", "53", "57", "58")
# A read-only transaction refusing a write: a standby after failover, or writes locked out;
# a lock not granted within lock_timeout (the statement timeout is 57014, in class 57).
_UNAVAILABLE_CODES = frozenset({"25006", "55P03"})
# Object not in prerequisite state: at log-in, "database does not allow connections"
# (ALTER DATABASE ... ALLOW_CONNECTIONS false); from a statement, a bug.
_UNAVAILABLE_AT_CONNECT = frozenset({"55000"})
_ASYNCPG_CONNECT = "asyncpg.connect_utils"


def unavailable(error: BaseException) -> bool:
    """Whether PostgreSQL (or the way to it) is unavailable: by SQLSTATE, asyncpg's or the
    one SQLAlchemy keeps, or a socket error while asyncpg connected."""
    for cause in causes(error):
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate.startswith(_UNAVAILABLE_CLASSES) or sqlstate in _UNAVAILABLE_CODES:
                return True
            if sqlstate in _UNAVAILABLE_AT_CONNECT and raised_in(cause, _ASYNCPG_CONNECT):
                return True
        # An unknown host, no route, every address refusing ("Multiple exceptions: ..."):
        # plain OSErrors, not ConnectionErrors.
        if isinstance(cause, OSError) and raised_in(cause, _ASYNCPG_CONNECT):
            return True
    return False
