"""Database URLs: user-facing forms mapped to the async drivers genkeep uses."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from genkeep.errors import ConfigurationError

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


def async_url(raw: str) -> URL:
    """Parse ``raw`` and pick the async driver for its backend."""
    try:
        url = make_url(raw)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ConfigurationError(f"cannot parse database URL: {exc}") from None
    driver = _ASYNC_DRIVERS.get(url.drivername, url.drivername)
    if driver not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ConfigurationError(
            f"unsupported database {url.drivername!r}: use sqlite:///path or postgresql://..."
        )
    if driver == "postgresql+asyncpg" and "sslmode" in url.query:
        # libpq's sslmode (Azure's and KEDA's connection strings carry it) is asyncpg's
        # ssl, with the same values; passed through as is, asyncpg refuses the URL.
        mode = url.query["sslmode"]
        url = url.difference_update_query(["sslmode"])
        if "ssl" not in url.query:
            url = url.update_query_dict({"ssl": mode})
    return url.set(drivername=driver)


def libpq_dsn(url: URL) -> str:
    """``url`` as a plain libpq URL for asyncpg's own connect (password kept): asyncpg reads
    ``sslmode`` there, and would send an ``ssl`` parameter to the server as a setting."""
    plain = url.set(drivername="postgresql")
    if "ssl" in plain.query:
        mode = plain.query["ssl"]
        plain = plain.difference_update_query(["ssl"]).update_query_dict({"sslmode": mode})
    return plain.render_as_string(hide_password=False)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def is_ephemeral(url: URL) -> str | None:
    """Why ``url`` would lose data on restart (in-memory or temporary SQLite), or None."""
    if not is_sqlite(url):
        return None
    database = url.database or ""
    if (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or "mode=memory" in str(url)
    ):
        return "an in-memory SQLite database loses everything when the process exits"
    path = Path(database.removeprefix("file:").split("?")[0]).expanduser().resolve()
    for scratch in {Path(tempfile.gettempdir()).resolve(), *_SCRATCH_DIRS}:
        if path == scratch or scratch in path.parents:
            return f"a SQLite file under the temporary directory {scratch} may be wiped at any time"
    return None


# Folders the OS may empty (RAM disks, /tmp on reboot), wherever TMPDIR points.
_SCRATCH_DIRS = (Path("/dev/shm"), Path("/run/shm"), Path("/tmp"))


def redacted(url: URL) -> str:
    """The URL with its password hidden, for logs and messages."""
    return url.render_as_string(hide_password=True)
