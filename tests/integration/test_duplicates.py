"""Duplicate detection finds rows sharing a key, e.g. in data imported without the constraint."""

from __future__ import annotations

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from genkeep.db.database import Database
from genkeep.db.models import Prompt
from genkeep.db.prompts import PromptStore
from genkeep.db.types import utcnow


def _drop_unique_key(connection: Connection) -> None:
    operations = Operations(MigrationContext.configure(connection, opts={"render_as_batch": True}))
    with operations.batch_alter_table("prompts") as batch:
        batch.drop_constraint("uq_prompts_key", type_="unique")


async def test_duplicates_are_listed(database: Database) -> None:
    store = PromptStore(database)
    assert await store.find_duplicates() == []
    async with database.engine.begin() as connection:
        await connection.run_sync(_drop_unique_key)
    now = utcnow()
    rows = [
        {
            "id": f"p{i}",
            "owner_id": "alice",
            "profile_name": "default",
            "profile_key": "k",
            "normalized_hash": "h" if i < 3 else "other",
            "normalized_text": "t",
            "prompt_text": "T",
            "status": "ready",
            "attempts": 1,
            "latest_version": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(4)
    ]
    async with database.transaction() as session:
        await session.execute(insert(Prompt), rows)
    [duplicate] = await store.find_duplicates()
    assert (duplicate.owner_id, duplicate.normalized_hash, duplicate.count) == ("alice", "h", 3)
    assert sorted(duplicate.prompt_ids) == ["p0", "p1", "p2"]
