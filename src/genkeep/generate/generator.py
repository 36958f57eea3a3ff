"""The generator protocol every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from genkeep.config import GeneratorProfile


@dataclass(frozen=True, slots=True)
class Generation:
    """What a generator produced, with the model that produced it and its token usage."""

    content: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Generator(Protocol):
    """Turns a prompt into content; raises ``GenerationFailed`` on a definitive failure."""

    async def generate(self, prompt: str, profile: GeneratorProfile) -> Generation: ...
