"""What a generator produced: the one value generators, the store and the API pass around."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Generation:
    """What a generator produced, with the model that produced it and its token usage."""

    content: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
