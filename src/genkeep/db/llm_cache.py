"""The LLM answer cache: valid answers kept in the database, so a re-run pays once."""

from __future__ import annotations

from sqlalchemy import Table, select

from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.models import LlmAnswer
from genkeep.db.types import utcnow


class DbLlmCache:
    """Valid LLM answers by request hash, shared by every process on the database; an
    answer older than ``ttl_s`` is a miss (and the sweep deletes it)."""

    def __init__(self, database: Database, ttl_s: float = 30 * 86400.0) -> None:
        self.db = database
        self.ttl_s = ttl_s

    async def get(self, key: str) -> str | None:
        query = select(LlmAnswer.answer).where(
            LlmAnswer.request_hash == key,
            LlmAnswer.created_at >= self.db.driver.now_plus(-self.ttl_s),
        )
        async with self.db.reading() as session:
            return (await session.execute(query)).scalar_one_or_none()

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
