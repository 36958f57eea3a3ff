"""An in-process API with two owners, and a snapshot of everything a request could write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from genkeep.api.app import attach, create_app
from genkeep.config import Settings
from genkeep.extract.manager import RunManager
from genkeep.services import Services, close_services, open_services

TABLES = (
    "prompts",
    "results",
    "jobs",
    "job_events",
    "tasks",
    "artifacts",
    "runs",
    "run_batches",
    "ontologies",
)


@dataclass
class EdgeApi:
    client: httpx.AsyncClient
    services: Services
    alice: dict[str, str]
    bob: dict[str, str]
    alice_key_id: str


@asynccontextmanager
async def edge_api(settings: Settings, tmp_path: Path, **overrides: Any) -> AsyncIterator[EdgeApi]:
    """The app in process over ASGI; an app exception would fail the request loudly."""
    configured = settings.model_copy(
        update={
            "auth_required": True,
            "blob_dir": tmp_path / "blobs",
            "public_url": "http://genkeep",
            "serve_worker": False,
            **overrides,
        }
    )
    app = create_app(configured)
    services = await open_services(configured)
    attach(app, services)
    key, alice = await services.keys.create("alice", "edge")
    _, bob = await services.keys.create("bob", "edge")
    # raise_app_exceptions: an exception escaping the app is what made uvicorn drop the
    # connection; here it fails the test instead of turning into a quiet 500.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    try:
        async with (
            RunManager() as manager,
            httpx.AsyncClient(transport=transport, base_url="http://genkeep") as client,
        ):
            app.state.run_manager = manager
            yield EdgeApi(
                client,
                services,
                {"Authorization": f"Bearer {alice}"},
                {"Authorization": f"Bearer {bob}"},
                key.id,
            )
    finally:
        await close_services(services)


async def snapshot(services: Services) -> dict[str, Any]:
    """Row counts of every table a request writes, and every blob key."""
    counts: dict[str, Any] = {}
    async with services.database.reading() as session:
        for table in TABLES:
            counts[table] = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
    counts["blobs"] = sorted([key async for key in services.blobs.list_keys("")])
    return counts
