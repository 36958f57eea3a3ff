"""Whether an error means the database is unavailable, as the app's own driver judges it."""

from __future__ import annotations

from typing import Any


def database_unavailable(app: Any, error: BaseException) -> bool:
    """The driver's verdict on ``error``: an outage (503) rather than a bug (500)."""
    services = getattr(app.state, "services", None)
    return services is not None and services.database.driver.is_unavailable(error)
