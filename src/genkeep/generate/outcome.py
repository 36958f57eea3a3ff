"""What a generate request answers, from a stored result or a fresh generation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from genkeep.core.generation import Generation, details_of
from genkeep.core.hashes import sha256_hex
from genkeep.db.models import Result
from genkeep.db.prompts import StoredResult


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a generate request answers."""

    prompt_id: str | None
    result_id: str | None
    version: int | None
    content: str
    content_sha256: str
    model: str
    source: str
    cached: bool
    coalesced: bool
    persisted: bool
    # The generator's usage as stored with the result; None when it reported none.
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # What the answer said beside its text (``Generation.details``), replayed on hits.
    details: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, object]:
        """The response body (``dataclasses.asdict`` deep-copies: a tenth of a hit's cost)."""
        return {
            "prompt_id": self.prompt_id,
            "result_id": self.result_id,
            "version": self.version,
            "content": self.content,
            "content_sha256": self.content_sha256,
            "model": self.model,
            "source": self.source,
            "cached": self.cached,
            "coalesced": self.coalesced,
            "persisted": self.persisted,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "details": self.details,
        }


# A generator call made elsewhere (chat completions), given the id its result will be stored
# under (None when it will not be); None means the profile's prompt call.
Produce = Callable[[str | None], Awaitable[Generation]]


def stored_outcome(
    prompt_id: str, result: StoredResult | Result, *, cached: bool, coalesced: bool
) -> Outcome:
    """A stored result (as read first, or as just committed) as an answer."""
    return Outcome(
        prompt_id=prompt_id,
        result_id=result.id,
        version=result.version,
        content=result.content,
        content_sha256=result.content_sha256,
        model=result.model,
        source=result.source,
        cached=cached,
        coalesced=coalesced,
        persisted=True,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        details=result.details if isinstance(result, StoredResult) else details_of(result.details),
    )


def unstored_outcome(
    generation: Generation, prompt_id: str | None, result_id: str | None
) -> Outcome:
    return Outcome(
        prompt_id=prompt_id,
        result_id=result_id,
        version=None,
        content=generation.content,
        content_sha256=sha256_hex(generation.content),
        model=generation.model,
        source="generated",
        cached=False,
        coalesced=False,
        persisted=False,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        details=generation.details,
    )
