"""The built-in embedder and the sharing of a batch's usage among its texts."""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest

from genkeep.config import GeneratorProfile
from genkeep.generate.embedder import BuiltinEmbedder, EmbeddingCall, share_tokens


@pytest.mark.parametrize("total", [0, 1, 7, 100, 12345])
def test_a_batchs_tokens_are_shared_exactly(total: int) -> None:
    texts = ["a", "bb bb", "ccc ccc ccc", "", "d" * 50]
    shares = share_tokens(total, texts)
    assert sum(s or 0 for s in shares) == total
    assert all(s is not None and s >= 0 for s in shares)
    assert share_tokens(None, texts) == [None] * len(texts)


async def test_the_builtin_embedder_is_deterministic_and_both_encodings_agree() -> None:
    profile = GeneratorProfile()
    embedder = BuiltinEmbedder()
    texts = ["durable data", "durable  data"]
    floats = await embedder.embed(texts, EmbeddingCall(32, "float"), profile)
    encoded = await embedder.embed(texts, EmbeddingCall(32, "base64"), profile)
    again = await embedder.embed(texts, EmbeddingCall(32, "float"), profile)

    vectors = [json.loads(g.content) for g in floats]
    raw = [base64.b64decode(g.content) for g in encoded]
    assert [list(struct.unpack("<32f", r)) for r in raw] == vectors
    assert [g.content for g in again] == [g.content for g in floats]
    assert vectors[0] != vectors[1]  # a space changes a vector: nothing is normalized
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
