"""Ontologies by content hash: a run names the ontology it was started with, stored once."""

from __future__ import annotations

from genkeep.db.database import Database
from genkeep.db.models import OntologyRecord
from genkeep.db.types import utcnow


class OntologyStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    async def save(self, content_hash: str, canonical: str) -> None:
        """Store an ontology's canonical text; one already stored is kept as it is."""
        values = {"content_hash": content_hash, "canonical": canonical, "created_at": utcnow()}
        statement = self.db.driver.insert_ignoring_conflicts(OntologyRecord.__table__, values)  # type: ignore[arg-type]
        async with self.db.transaction() as session:
            await session.execute(statement)

    async def get(self, content_hash: str) -> str | None:
        async with self.db.reading() as session:
            record = await session.get(OntologyRecord, content_hash)
        return None if record is None else record.canonical
