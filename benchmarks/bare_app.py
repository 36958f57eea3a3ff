"""The yardstick: a bare FastAPI endpoint doing only genkeep's cache-hit read.

Same body, same key (genkeep's normalization and default profile), same engine settings
(genkeep's ``Database``: driver, pool size, SQLite pragmas) and the same indexed SELECT on
the unique key joined to the latest result; no service, ORM objects or metrics.
Served as ``uvicorn benchmarks.bare_app:create_app --factory`` with ``GENKEEP_*`` env.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import bindparam, select, text

from genkeep.config import load_settings
from genkeep.db.database import Database
from genkeep.db.models import Prompt, Result
from genkeep.generate.normalize import normalize_prompt, profile_key, prompt_hash


class GenerateBody(BaseModel):
    prompt: str


class Answer(BaseModel):
    result_id: str
    content: str


LATEST_RESULT = (
    select(Result.id, Result.content)
    .join(Prompt, Prompt.latest_result_id == Result.id)
    .where(
        Prompt.owner_id == bindparam("owner_id"),
        Prompt.profile_key == bindparam("profile_key"),
        Prompt.normalized_hash == bindparam("normalized_hash"),
    )
)


def create_app() -> FastAPI:
    settings = load_settings()
    found = settings.profile(None)
    assert found is not None, "genkeep's default profile exists"
    key_of_profile = profile_key(found[1].key_material())
    database = Database(settings.database_url, pool_size=settings.db_pool_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await database.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/generate")
    async def generate(body: GenerateBody) -> Answer:
        params = {
            "owner_id": settings.default_owner,
            "profile_key": key_of_profile,
            "normalized_hash": prompt_hash(normalize_prompt(body.prompt)),
        }
        async with database.engine.connect() as connection:
            row = (await connection.execute(LATEST_RESULT, params)).first()
        if row is None:
            raise HTTPException(404, "no stored result for this prompt")
        return Answer(result_id=row.id, content=row.content)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return {"status": "ready"}

    return app
