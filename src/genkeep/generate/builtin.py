"""The built-in offline generator: deterministic markdown, no network."""

from __future__ import annotations

import asyncio
import hashlib
import random

from genkeep.config import GeneratorProfile
from genkeep.generate.generator import Generation
from genkeep.generate.normalize import normalize_prompt

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


class BuiltinGenerator:
    """Same normalized prompt and model, same content: a markdown title and paragraphs."""

    async def generate(self, prompt: str, profile: GeneratorProfile) -> Generation:
        if profile.latency_ms:
            await asyncio.sleep(profile.latency_ms / 1000)
        return Generation(content=render(prompt, profile.model), model=profile.model)


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
