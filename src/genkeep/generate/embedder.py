"""Embedding backends: one vector per input text, encoded as OpenAI sends it.

A vector is stored as its encoded text, the way the upstream sent it (a JSON array of
floats, or base64 of little-endian float32), so a hit is the stored text as is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import struct
from dataclasses import dataclass
from typing import Literal, Protocol

from genkeep.config import GeneratorProfile
from genkeep.core.generation import Generation

EncodingFormat = Literal["float", "base64"]
# The built-in embedder's width when the request names none (OpenAI's small model has 1536).
BUILTIN_DIMENSIONS = 256


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    """What every input of one request is embedded with; all of it is in the key."""

    dimensions: int | None
    encoding_format: EncodingFormat


class Embedder(Protocol):
    """Embeds texts in one call, a Generation per text in order (content: the encoded vector)."""

    async def embed(
        self, texts: list[str], call: EmbeddingCall, profile: GeneratorProfile
    ) -> list[Generation]: ...


def encode_vector(vector: list[float], encoding_format: EncodingFormat) -> str:
    """A float32 vector as OpenAI encodes it."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return json.dumps(vector, separators=(",", ":"))


def builtin_vector(text: str, model: str, dimensions: int) -> list[float]:
    """A deterministic unit vector of float32 values: the same text, the same vector."""
    seed = hashlib.sha256(f"{model}\x00{dimensions}\x00{text}".encode()).digest()
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    # Rounded to float32, so the float and base64 encodings say the same numbers.
    packed = struct.pack(f"<{dimensions}f", *(x / norm for x in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


class BuiltinEmbedder:
    """The offline embedder of the built-in profiles; a token is a whitespace-separated word."""

    async def embed(
        self, texts: list[str], call: EmbeddingCall, profile: GeneratorProfile
    ) -> list[Generation]:
        dimensions = call.dimensions or BUILTIN_DIMENSIONS
        return [
            Generation(
                content=encode_vector(
                    builtin_vector(text, profile.model, dimensions), call.encoding_format
                ),
                model=profile.model,
                prompt_tokens=max(1, len(text.split())),
                completion_tokens=0,
            )
            for text in texts
        ]


def share_tokens(total: int | None, texts: list[str]) -> list[int | None]:
    """A batch's prompt tokens shared among its texts by length, summing to ``total``
    (upstreams report one count per batch; each text is stored with its own)."""
    if total is None:
        return [None] * len(texts)
    weights = [max(len(text), 1) for text in texts]
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    # The remainder goes to the largest fractions, so the shares add up exactly.
    order = sorted(range(len(texts)), key=lambda i: (total * weights[i]) % whole, reverse=True)
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return list(shares)
