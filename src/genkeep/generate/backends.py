"""Build the generator backends the configured profiles need."""

from __future__ import annotations

from genkeep.config import Settings
from genkeep.generate.builtin import BuiltinGenerator
from genkeep.generate.generator import Generator


def build_generators(settings: Settings) -> dict[str, Generator]:
    generators: dict[str, Generator] = {"builtin": BuiltinGenerator()}
    if any(p.backend == "openai" for p in settings.profiles.values()):
        from genkeep.generate.openai_backend import OpenAIGenerator

        generators["openai"] = OpenAIGenerator.from_settings(settings)
    return generators
