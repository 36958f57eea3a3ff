"""The built-in offline generator: deterministic markdown, no network."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re

from genkeep.config import GeneratorProfile
from genkeep.core.generation import Generation
from genkeep.generate.chat_key import ChatCall
from genkeep.generate.embedder import BuiltinEmbedder
from genkeep.generate.generator import OnDelta
from genkeep.generate.normalize import normalize_prompt

# A streamed piece: a word with the whitespace after it (or leading whitespace alone).
_PIECE = re.compile(r"\S+\s*|\s+")

_WORDS = [
    "durable",
    "data",
    "stays",
    "correct",
    "when",
    "every",
    "write",
    "has",
    "one",
    "owner",
    "and",
    "one",
    "place",
    "in",
    "the",
    "log",
    "a",
    "result",
    "that",
    "was",
    "paid",
    "for",
    "once",
    "is",
    "kept",
    "and",
    "served",
    "again",
    "instead",
    "of",
    "generated",
    "twice",
    "careful",
    "systems",
    "make",
    "the",
    "common",
    "path",
    "fast",
    "and",
    "the",
    "rare",
    "path",
    "safe",
]


class BuiltinGenerator(BuiltinEmbedder):
    """Same normalized prompt and model, same content: a markdown title and paragraphs."""

    async def generate(self, prompt: str, profile: GeneratorProfile) -> Generation:
        if profile.latency_ms:
            await asyncio.sleep(profile.latency_ms / 1000)
        content = render(prompt, profile.model)
        # Counted as its chat does (words), so a stored result says what the ledger charged.
        return Generation(
            content=content,
            model=profile.model,
            prompt_tokens=len(prompt.split()),
            completion_tokens=len(content.split()),
        )

    async def chat(
        self, call: ChatCall, profile: GeneratorProfile, on_delta: OnDelta | None = None
    ) -> Generation:
        """The content ``generate`` gives the last user message; streamed word by word. Asked
        to call a tool (``tool_choice`` required or named), it calls it with no arguments."""
        called = _tool_call(call, profile.model)
        if called is not None:
            return called
        asked = next((m.text for m in reversed(call.messages) if m.role == "user"), "")
        content = render(asked, profile.model)
        pieces = _PIECE.findall(content)
        if on_delta is None:
            if profile.latency_ms:
                await asyncio.sleep(profile.latency_ms / 1000)
        else:
            # The latency is spread over the pieces, as a model's tokens arrive over time.
            pause = profile.latency_ms / 1000 / max(len(pieces), 1)
            for piece in pieces:
                await asyncio.sleep(pause)
                on_delta(piece, profile.model)
        return Generation(
            content=content,
            model=profile.model,
            prompt_tokens=sum(len(m.text.split()) for m in call.messages),
            completion_tokens=len(content.split()),
        )


def _tool_call(call: ChatCall, model: str) -> Generation | None:
    choice = call.tool_choice
    if not call.tools or choice in (None, "none", "auto"):
        return None
    name = choice["function"]["name"] if isinstance(choice, dict) else None
    name = name or call.tools[0]["function"]["name"]
    digest = hashlib.sha256(f"{model}\x00{name}".encode()).hexdigest()[:24]
    tool_call = {
        "id": f"call_{digest}",
        "type": "function",
        "function": {"name": name, "arguments": "{}"},
    }
    return Generation(
        content="",
        model=model,
        prompt_tokens=sum(len(m.text.split()) for m in call.messages),
        completion_tokens=1,
        details={
            "finish_reason": "tool_calls",
            "message": {"tool_calls": [tool_call]},
            "null_content": True,
        },
    )


def render(prompt: str, model: str) -> str:
    seed = hashlib.sha256(f"{model}\x00{normalize_prompt(prompt)}".encode()).digest()
    rng = random.Random(seed)
    title = " ".join(prompt.split())[:80] or "Untitled"
    paragraphs = []
    for _ in range(rng.randint(2, 4)):
        sentences = []
        for _ in range(rng.randint(2, 4)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        paragraphs.append(" ".join(sentences))
    return f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n"
