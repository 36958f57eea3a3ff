"""Canonical content for previews and exports (I2): always read from what was persisted."""

from __future__ import annotations

from genkeep.db.models import Result
from genkeep.db.prompts import PromptStore
from genkeep.errors import NotFound


async def persisted_content(
    store: PromptStore, owner_id: str, *, result_id: str | None = None, prompt_id: str | None = None
) -> Result:
    """The stored result by id, or a prompt's latest result; NotFound otherwise."""
    if result_id is not None:
        result = await store.get_result(owner_id, result_id)
        if result is None:
            raise NotFound(f"result {result_id} not found")
        return result
    if prompt_id is None:
        raise ValueError("result_id or prompt_id is required")
    result = await store.latest_result(owner_id, prompt_id)
    if result is None:
        if await store.get_prompt(owner_id, prompt_id) is None:
            raise NotFound(f"prompt {prompt_id} not found")
        raise NotFound(f"prompt {prompt_id} has no stored result yet")
    return result


def title_of(content: str, fallback: str = "genkeep export") -> str:
    """The first markdown heading, else ``fallback``."""
    for line in content.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            title = stripped.lstrip("#").strip()
            if title:
                return title[:300]
    return fallback
