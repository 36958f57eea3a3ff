"""The LLM answer cache: valid answers kept in the database, so a re-run pays once; and the
single flight of its misses, so workers asking one prompt at once pay once too."""

from __future__ import annotations

from sqlalchemy import Select, Table, delete, select, update

from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.models import LlmAnswer, LlmFlight
from genkeep.db.types import utcnow


class DbLlmCache:
    """Valid LLM answers by request hash, shared by every process on the database; an
    answer older than ``ttl_s`` is a miss (and the sweep deletes it)."""

    def __init__(self, database: Database, ttl_s: float = 30 * 86400.0) -> None:
        self.db = database
        self.ttl_s = ttl_s

    def _answer(self, key: str) -> Select[str]:
        return select(LlmAnswer.answer).where(
            LlmAnswer.request_hash == key,
            LlmAnswer.created_at >= self.db.driver.now_plus(-self.ttl_s),
        )

    async def get(self, key: str) -> str | None:
        async with self.db.reading() as session:
            return (await session.execute(self._answer(key))).scalar_one_or_none()

    async def lookup(self, key: str) -> tuple[str | None, bool]:
        """The stored answer, and whether a live flight is asking the model for one now."""
        flying = select(LlmFlight.request_hash).where(
            LlmFlight.request_hash == key, LlmFlight.lease_expires_at > self.db.driver.now()
        )
        async with self.db.reading() as session:
            answer = (await session.execute(self._answer(key))).scalar_one_or_none()
            live = (await session.execute(flying)).first() is not None
        return answer, live

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

    @completes_when_cancelled
    async def claim(self, key: str, token: str, lease_s: float) -> bool:
        """Lead the one call for ``key``: none is in flight, or its leader's lease ended."""
        table: Table = LlmFlight.__table__  # type: ignore[assignment]
        lease = self.db.driver.now_plus(lease_s)
        values = {"request_hash": key, "token": token, "lease_expires_at": lease}
        fresh = self.db.driver.insert_ignoring_conflicts(table, values)
        ended = LlmFlight.lease_expires_at <= self.db.driver.now()
        takeover = (
            update(LlmFlight)
            .where(LlmFlight.request_hash == key, ended)
            .values(token=token, lease_expires_at=lease)
        )
        async with self.db.transaction() as session:
            inserted = await session.execute(fresh)
            if inserted.rowcount == 1:  # type: ignore[attr-defined]
                return True
            taken: int = (await session.execute(takeover)).rowcount  # type: ignore[attr-defined]
        return taken == 1

    @completes_when_cancelled
    async def renew(self, key: str, token: str, lease_s: float) -> bool:
        """Extend the lead's lease; False if another took the flight over."""
        statement = (
            update(LlmFlight)
            .where(LlmFlight.request_hash == key, LlmFlight.token == token)
            .values(lease_expires_at=self.db.driver.now_plus(lease_s))
        )
        async with self.db.transaction() as session:
            renewed: int = (await session.execute(statement)).rowcount  # type: ignore[attr-defined]
        return renewed == 1

    @completes_when_cancelled
    async def land(self, key: str, token: str) -> None:
        """End the lead (answered or not): a waiter finds the answer, or leads itself."""
        statement = delete(LlmFlight).where(LlmFlight.request_hash == key, LlmFlight.token == token)
        async with self.db.transaction() as session:
            await session.execute(statement)
