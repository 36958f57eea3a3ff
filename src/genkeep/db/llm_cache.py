"""The LLM answer cache: valid answers kept in the database, so a re-run pays once."""

from __future__ import annotations

from sqlalchemy import Table

from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.models import LlmAnswer
from genkeep.db.types import utcnow


class DbLlmCache:
    """Valid LLM answers by request hash, shared by every process on the database."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def get(self, key: str) -> str | None:
        async with self.db.reading() as session:
            found = await session.get(LlmAnswer, key)
        return None if found is None else found.answer

    @completes_when_cancelled
    async def put(self, key: str, answer: str) -> None:
        """Store a valid answer; it replaces a stored one (which the extractor found invalid)."""
        values = {"answer": answer, "created_at": utcnow()}
        table: Table = LlmAnswer.__table__  # type: ignore[assignment]
        statement = self.db.driver.upsert_if_newer(
            table, {"request_hash": key}, values, "created_at"
        )
        async with self.db.transaction() as session:
            await session.execute(statement)
