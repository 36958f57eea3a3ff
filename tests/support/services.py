"""Services for integration tests: the test's database, blobs in the test's folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from genkeep.config import Settings
from genkeep.services import Services, close_services, open_services


@asynccontextmanager
async def opened_services(
    settings: Settings, tmp_path: Path, **overrides: object
) -> AsyncIterator[Services]:
    """Services on ``settings``' database with blobs under ``tmp_path`` and ``overrides``."""
    configured = settings.model_copy(update={"blob_dir": tmp_path / "blobs", **overrides})
    opened = await open_services(configured)
    try:
        yield opened
    finally:
        await close_services(opened)
