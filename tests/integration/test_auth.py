"""Who a request acts as: API keys, the development default, the trusted-gateway header."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from platformdirs import user_cache_dir

from genkeep.config import Settings, sqlite_url
from genkeep.db.url import async_url, is_ephemeral
from genkeep.services import Services
from tests.support.in_process import in_process

REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    async with in_process(settings) as app:
        yield app.client, app.services


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


def durable_folder() -> Path:
    """A folder whose SQLite files production accepts: the checkout's var/, or, for a checkout
    under the temporary directory, the user's cache folder, or /var/tmp (kept across reboots)."""
    candidates = (
        REPO / "var",
        Path(user_cache_dir("genkeep-tests")),
        Path("/var/tmp/genkeep-tests"),
    )
    for folder in candidates:
        if is_ephemeral(async_url(sqlite_url(folder / "genkeep.db"))) is None:
            return folder
    pytest.fail(f"no folder outside the temporary directory for a durable database: {candidates}")


@pytest.fixture
def production(settings: Settings, backend: str) -> Iterator[Settings]:
    """Production settings as an operator writes them: ``env`` only, on a durable database
    (production refuses a SQLite file under the temporary directory, where tmp_path is)."""
    if backend == "postgresql":
        yield settings.model_copy(update={"env": "production"})
        return
    durable = durable_folder() / f"test-production-{uuid.uuid4().hex[:10]}.db"
    durable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.database_url.removeprefix("sqlite:///"), durable)
    try:
        yield settings.model_copy(
            update={"env": "production", "database_url": f"sqlite:///{durable}"}
        )
    finally:
        for leftover in durable.parent.glob(f"{durable.name}*"):  # with its -wal and -shm
            leftover.unlink()


async def test_production_requires_a_key(production: Settings) -> None:
    assert production.auth_required is None  # nothing but env=production asks for keys
    async with client_for(production) as (client, services):
        response = await client.post("/v1/generate", json={"prompt": "hi"})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        _, key = await services.keys.create("alice", "test")
        allowed = await client.post(
            "/v1/generate", json={"prompt": "hi"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert allowed.status_code == 200, allowed.text


async def test_trusted_gateway_header(settings: Settings) -> None:
    gateway = settings.model_copy(update={"owner_header": "X-Genkeep-Owner"})
    async with client_for(gateway) as (client, _):
        job = (await client.post("/v1/jobs", json={}, headers={"X-Genkeep-Owner": "carol"})).json()
        seen = await client.get(f"/v1/jobs/{job['id']}", headers={"X-Genkeep-Owner": "carol"})
        hidden = await client.get(f"/v1/jobs/{job['id']}", headers={"X-Genkeep-Owner": "dave"})
        assert seen.status_code == 200 and hidden.status_code == 404
        for bad in ({}, {"X-Genkeep-Owner": "../etc"}, {"X-Genkeep-Owner": ""}):
            assert (await client.get("/v1/jobs", headers=bad)).status_code == 401
