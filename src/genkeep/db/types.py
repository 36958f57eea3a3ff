"""Timestamps as genkeep handles them: aware UTC datetimes, whatever the driver gave."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_from_driver(value: datetime | str) -> datetime:
    """A timestamp as a driver read it directly: an aware datetime or ISO text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
