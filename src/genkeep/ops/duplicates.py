"""The duplicate check: prompt rows that share a normalized key, which I1 says cannot exist."""

from __future__ import annotations

from genkeep.db.database import Database
from genkeep.db.migrate import prepare_schema
from genkeep.db.prompts import Duplicate, PromptStore


async def find_duplicates(database: Database) -> list[Duplicate]:
    """Every owner's prompts that share (profile, normalized hash); empty when I1 holds."""
    await prepare_schema(database)
    return await PromptStore(database).find_duplicates()
