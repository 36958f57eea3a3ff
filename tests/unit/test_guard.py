"""The JSON guard: what the database cannot hold is refused wherever it hides in a body.

``parse_json`` skips its walk of the tree for bodies with no ``\\u`` escape and few
brackets; these cases put the refused values where only the walk would find them.
"""

from __future__ import annotations

import json

import pytest

from genkeep.api.guard import MAX_JSON_DEPTH, parse_json
from genkeep.errors import GenkeepError, InvalidJson, InvalidText, MalformedRequest


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("body", "refusal", "field"),
    [
        ('{"messages": [{"content": "a\\u0000b"}]}', InvalidText, "body.messages.0.content"),
        ('{"a": {"k\\u0000": 1}}', InvalidText, "body.a"),
        ('{"prompt": "x\\ud800"}', InvalidText, "body.prompt"),
        ('{"prompt": "x\\uDC00y"}', InvalidText, "body.prompt"),
        ('{"deep": ' + nested(MAX_JSON_DEPTH + 1) + "}", MalformedRequest, None),
        # Raw NUL and raw surrogate bytes are not JSON at all: refused by the decoder.
        ('{"prompt": "a\x00b"}', InvalidJson, None),
        (b'{"prompt": "\xed\xa0\x80"}', InvalidJson, None),
    ],
)
def test_refused_wherever_it_hides(
    body: str | bytes, refusal: type[GenkeepError], field: str | None
) -> None:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(refusal) as raised:
        parse_json(raw)
    if field is not None:
        assert raised.value.detail.startswith(field + ":"), raised.value.detail


@pytest.mark.parametrize(
    "value",
    [
        {"prompt": "Café, 日本語 and an emoji 🙂", "profile": None},
        {"messages": [{"role": "user", "content": "a\\u0000 is only text here"}]},
        {"prompt": "\u2028 and \U0001f642, a surrogate pair when escaped"},
        {"deep": json.loads(nested(MAX_JSON_DEPTH - 1))},
        {"brackets in text": "[" * 200 + "{" * 200},
    ],
)
def test_what_the_database_can_hold_is_kept_exactly(value: object) -> None:
    for encoded in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert parse_json(encoded.encode()) == value
