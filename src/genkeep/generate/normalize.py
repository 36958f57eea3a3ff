"""Prompt normalization and the cache key it feeds (I1).

Two prompts share a key when they are equal after: Unicode NFKC, case folding, collapsing
every run of whitespace (any Unicode space, tabs, newlines) to one space, and trimming.
Punctuation, accents that NFKC keeps, and word order still distinguish prompts.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from genkeep.core.hashes import sha256_hex

_WHITESPACE = re.compile(r"\s+")


def normalize_prompt(prompt: str) -> str:
    # Case folding after NFKC can produce new compatibility forms (e.g. 'ﬃ' -> 'ffi'),
    # so NFKC is applied again to make the result stable under re-normalization.
    text = unicodedata.normalize("NFKC", prompt)
    text = unicodedata.normalize("NFKC", text.casefold())
    return _WHITESPACE.sub(" ", text).strip()


def prompt_hash(normalized: str) -> str:
    return sha256_hex(normalized)


def profile_key(material: dict[str, Any]) -> str:
    """A stable hash of the generator parameters that change output."""
    return sha256_hex(json.dumps(material, sort_keys=True, separators=(",", ":")))
