"""Who a request acts as: API keys, the development default, the trusted-gateway header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from genkeep.api.app import attach, create_app
from genkeep.config import Settings
from genkeep.services import Services, close_services, open_services


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    app = create_app(settings)
    services = await open_services(settings)
    attach(app, services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://genkeep") as client:
            yield client, services
    finally:
        await close_services(services)


async def test_development_default_owner_and_keys(settings: Settings) -> None:
    async with client_for(settings) as (client, services):
        job = (await client.post("/v1/jobs", json={"title": "dev"})).json()
        assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 200
        _, token = await services.keys.create("default")
        mine = await client.get(
            f"/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {token}"}
        )
        assert mine.status_code == 200
        _, other = await services.keys.create("someone-else")
        theirs = await client.get(
            f"/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {other}"}
        )
        assert theirs.status_code == 404


async def test_production_requires_a_key(settings: Settings) -> None:
    assert settings.model_copy(update={"env": "production"}).auth_enforced
    production = settings.model_copy(update={"auth_required": True})
    async with client_for(production) as (client, _):
        response = await client.post("/v1/generate", json={"prompt": "hi"})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


async def test_trusted_gateway_header(settings: Settings) -> None:
    gateway = settings.model_copy(update={"owner_header": "X-Genkeep-Owner"})
    async with client_for(gateway) as (client, _):
        job = (await client.post("/v1/jobs", json={}, headers={"X-Genkeep-Owner": "carol"})).json()
        seen = await client.get(f"/v1/jobs/{job['id']}", headers={"X-Genkeep-Owner": "carol"})
        hidden = await client.get(f"/v1/jobs/{job['id']}", headers={"X-Genkeep-Owner": "dave"})
        assert seen.status_code == 200 and hidden.status_code == 404
        for bad in ({}, {"X-Genkeep-Owner": "../etc"}, {"X-Genkeep-Owner": ""}):
            assert (await client.get("/v1/jobs", headers=bad)).status_code == 401
