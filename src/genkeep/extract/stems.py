"""Word stems shared by the extractors' cue matching: crude, deterministic, English."""

from __future__ import annotations

_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    """``knows``/``known`` -> ``know`` style stems: a short suffix off a word of 5+ letters."""
    word = word.lower().removesuffix("'s")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
