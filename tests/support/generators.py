"""Real generator backends instrumented for tests: counting, failing, gated."""

from __future__ import annotations

import asyncio

from genkeep.config import GeneratorProfile
from genkeep.core.generation import Generation
from genkeep.generate.builtin import BuiltinGenerator


class CountingGenerator(BuiltinGenerator):
    """The built-in generator, counting its calls; optionally failing the first ``fail`` calls."""

    def __init__(self, *, fail: int = 0, gate: asyncio.Event | None = None) -> None:
        self.calls = 0
        self.fail = fail
        self.gate = gate

    async def generate(self, prompt: str, profile: GeneratorProfile) -> Generation:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.calls <= self.fail:
            raise RuntimeError(f"upstream exploded on call {self.calls}")
        return await super().generate(prompt, profile)
