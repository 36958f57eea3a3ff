"""Which prompts share a key and which do not."""

from __future__ import annotations

import pytest

from genkeep.config import GeneratorProfile
from genkeep.generate.normalize import normalize_prompt, profile_key, prompt_hash


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Write a poem", "write a poem"),
        ("Write a poem", "  Write   a\tpoem \n"),
        ("Write a poem", "WRITE A POEM"),
        ("Straße", "STRASSE"),  # case folding, not just lower()
        ("ﬁle report", "file report"),  # NFKC ligature
        ("Ｆｕｌｌ ｗｉｄｔｈ", "full width"),  # NFKC compatibility forms
        ("caf\u0065\u0301", "café"),  # combining accent composes
        ("a\u00a0b\u2003c", "a b c"),  # non-breaking and em spaces are whitespace
        ("line one\r\nline two", "line one line two"),
    ],
)
def test_same_key(a: str, b: str) -> None:
    assert normalize_prompt(a) == normalize_prompt(b)
    assert prompt_hash(normalize_prompt(a)) == prompt_hash(normalize_prompt(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Write a poem", "Write a poem."),  # punctuation is meaning
        ("Write a poem", "Write a poem about cats"),
        ("poem a write", "write a poem"),  # word order is meaning
        ("café", "cafe"),  # accents survive NFKC
        ("writea poem", "write a poem"),  # whitespace collapses, never disappears
    ],
)
def test_different_key(a: str, b: str) -> None:
    assert prompt_hash(normalize_prompt(a)) != prompt_hash(normalize_prompt(b))


def test_normalization_is_idempotent() -> None:
    for text in ["ﬃ  Ǆ", "  Straße\u2003", "Ｈｅｌｌｏ"]:
        once = normalize_prompt(text)
        assert normalize_prompt(once) == once


def test_whitespace_only_normalizes_to_empty() -> None:
    assert normalize_prompt(" \t\n\u3000") == ""


def test_profile_key_covers_output_parameters_only() -> None:
    base = GeneratorProfile(model="m1")
    assert profile_key(base.key_material()) == profile_key(
        base.model_copy(update={"latency_ms": 500}).key_material()
    )
    for change in (
        {"model": "m2"},
        {"temperature": 0.7},
        {"max_tokens": 10},
        {"system_prompt": "be brief"},
        {"backend": "openai"},
    ):
        other = base.model_copy(update=change)
        assert profile_key(other.key_material()) != profile_key(base.key_material()), change
