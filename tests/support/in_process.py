"""genkeep's app on services of its own, behind an httpx client: no server, no network."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from genkeep.api.app import attach, create_app
from genkeep.config import Settings
from genkeep.extract.manager import RunManager
from genkeep.services import Services, close_services, open_services


@dataclass(frozen=True)
class InProcess:
    client: httpx.AsyncClient
    services: Services
    runs: RunManager
    app: FastAPI


@asynccontextmanager
async def in_process(settings: Settings, *, hot_routes: bool = True) -> AsyncIterator[InProcess]:
    """The app as ``genkeep serve`` builds it, minus the lifespan's worker."""
    app = create_app(settings, hot_routes=hot_routes)
    services = await open_services(settings)
    attach(app, services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with (
            RunManager() as manager,
            httpx.AsyncClient(transport=transport, base_url="http://genkeep") as client,
        ):
            app.state.run_manager = manager
            yield InProcess(client, services, manager, app)
    finally:
        await close_services(services)
