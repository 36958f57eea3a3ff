"""The yardstick: a bare FastAPI endpoint doing only a cache hit's work, on the driver itself.

Parse the JSON body, normalize and sha256 the prompt, run one indexed SELECT on the
(owner, profile, hash) unique key joined to the latest result, answer JSON with the same
fields genkeep answers. PostgreSQL through an asyncpg pool of fixed size (no reset round
trip on release); SQLite through one ``sqlite3`` connection on the event loop (a WAL read
of one row is cheaper than a thread hop). No SQLAlchemy, no genkeep service, metrics or
owner resolution.
Served as ``uvicorn benchmarks.bare_app:create_app --factory`` with ``GENKEEP_*`` env.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

_WHITESPACE = re.compile(r"\s+")
_PG_LATEST = """
SELECT p.id AS prompt_id, r.id, r.version, r.source, r.content, r.content_sha256, r.model
FROM prompts AS p JOIN results AS r ON r.id = p.latest_result_id
WHERE p.owner_id = $1 AND p.profile_key = $2 AND p.normalized_hash = $3
"""
_SQLITE_LATEST = _PG_LATEST.replace("$1", "?").replace("$2", "?").replace("$3", "?")


class GenerateBody(BaseModel):
    prompt: str


def normalized_hash(prompt: str) -> str:
    """NFKC, case fold, NFKC, collapse whitespace, trim; sha256 hex (genkeep's key)."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", prompt).casefold())
    return hashlib.sha256(_WHITESPACE.sub(" ", text).strip().encode()).hexdigest()


def _key_of_default_profile() -> tuple[str, str]:
    """(owner, profile key) of genkeep's defaults; read once at start, never per request."""
    from genkeep.config import load_settings
    from genkeep.generate.normalize import normalize_prompt, profile_key, prompt_hash

    sample = "  Ｃheck\tTHE ﬃ  key "
    assert normalized_hash(sample) == prompt_hash(normalize_prompt(sample)), "key drifted"
    settings = load_settings()
    found = settings.profile(None)
    assert found is not None, "genkeep's default profile exists"
    return settings.default_owner, profile_key(found[1].key_material())


def _database_url() -> str:
    from genkeep.config import load_settings

    return str(load_settings().database_url)


async def _no_reset(connection: asyncpg.Connection) -> None:
    pass


@asynccontextmanager
async def _postgres(url: str, size: int) -> AsyncIterator[Callable[[list[str]], Awaitable[Any]]]:
    dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
    # Nothing to reset after a lone SELECT: asyncpg's default reset is a round trip per release.
    async with asyncpg.create_pool(dsn, min_size=size, max_size=size, reset=_no_reset) as pool:

        async def fetch(params: list[str]) -> Any:
            return await pool.fetchrow(_PG_LATEST, *params)

        yield fetch


@asynccontextmanager
async def _sqlite(url: str) -> AsyncIterator[Callable[[list[str]], Awaitable[Any]]]:
    path = re.sub(r"^sqlite(\+\w+)?:///", "", url)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA busy_timeout=30000")
    try:

        async def fetch(params: list[str]) -> Any:
            return connection.execute(_SQLITE_LATEST, params).fetchone()

        yield fetch
    finally:
        connection.close()


def create_app() -> FastAPI:
    owner, key_of_profile = _key_of_default_profile()
    url = _database_url()
    fetch: Callable[[list[str]], Awaitable[Any]] | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal fetch
        opened = _sqlite(url) if url.startswith("sqlite") else _postgres(url, 10)
        async with opened as fetch:
            yield

    # As lean as genkeep's app: no OpenTelemetry hooks (genkeep exports Prometheus).
    app = FastAPI(lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.post("/v1/generate")
    async def generate(body: GenerateBody) -> JSONResponse:
        assert fetch is not None
        row = await fetch([owner, key_of_profile, normalized_hash(body.prompt)])
        if row is None:
            raise HTTPException(404, "no stored result for this prompt")
        return JSONResponse(
            {
                "prompt_id": row["prompt_id"],
                "result_id": row["id"],
                "version": row["version"],
                "content": row["content"],
                "content_sha256": row["content_sha256"],
                "model": row["model"],
                "source": row["source"],
            }
        )

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        assert fetch is not None
        await fetch([owner, key_of_profile, ""])
        return {"status": "ready"}

    return app
