"""What a generator produced: the one value generators, the store and the API pass around."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Generation:
    """What a generator produced, with the model that produced it and its token usage.

    ``details`` holds what an OpenAI-compatible answer says beside its text (finish reason,
    tool calls, reasoning, usage details, system fingerprint), stored with the result and
    replayed field for field on hits; None when there is nothing beyond the text.
    """

    content: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    details: Mapping[str, Any] | None = None


# One encoder for the stored form: compact, key order as the generator built it.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def details_text(details: Mapping[str, Any] | None) -> str | None:
    """The stored (JSON) form of a generation's details."""
    return None if not details else _ENCODER.encode(details)


def details_of(text: str | None) -> dict[str, Any] | None:
    """The details a result was stored with."""
    if not text:
        return None
    found: dict[str, Any] = json.loads(text)
    return found
