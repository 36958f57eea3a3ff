"""Checks every entry point (serve, worker, extract) runs before it starts work."""

from __future__ import annotations

from genkeep.config import Settings
from genkeep.db.url import async_url, is_ephemeral
from genkeep.errors import ConfigurationError


def check_durable(settings: Settings) -> None:
    """Refuse an in-memory or temporary database in production (I12)."""
    if settings.env != "production":
        return
    reason = is_ephemeral(async_url(settings.database_url))
    if reason:
        raise ConfigurationError(
            f"refusing to run in production on {settings.database_url}: {reason}. "
            "Set GENKEEP_DATABASE_URL to PostgreSQL or a durable SQLite file."
        )
