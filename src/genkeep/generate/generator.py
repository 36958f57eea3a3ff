"""The generator protocols backends implement: a prompt, and a chat (/v1/chat/completions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from genkeep.config import GeneratorProfile
from genkeep.core.generation import Generation

if TYPE_CHECKING:
    from genkeep.generate.chat_key import ChatCall

# Receives each piece of text as the generator produces it, and the model name the answer
# carries (the same for every piece: a stream names one model).
OnDelta = Callable[[str, str], None]


class Generator(Protocol):
    """Turns a prompt into content; raises ``GenerationFailed`` on a definitive failure."""

    async def generate(self, prompt: str, profile: GeneratorProfile) -> Generation: ...


class ChatGenerator(Protocol):
    """Answers a chat; with ``on_delta`` it streams, handing over each piece as it comes."""

    async def chat(
        self, call: ChatCall, profile: GeneratorProfile, on_delta: OnDelta | None = None
    ) -> Generation: ...
