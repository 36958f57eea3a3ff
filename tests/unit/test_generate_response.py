"""The hot routes serialize an Outcome directly: what they send must be their documents'."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from genkeep.api.openai_responses import completion_body
from genkeep.api.schemas import GenerateResponse
from genkeep.generate.outcome import Outcome


def test_outcome_fields_are_the_response_fields() -> None:
    assert [f.name for f in fields(Outcome)] == list(GenerateResponse.model_fields)


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(
            "p1",
            "r1",
            3,
            'a "quote", a \\ and\n\t—ü🙂\u2028\x01',
            "s",
            'm"x',
            "edited",
            True,
            False,
            True,
            7,
            9,
        ),
        Outcome(None, None, None, "", "s", "m", "generated", False, False, False),
    ],
)
def test_a_chat_completion_body_is_the_openai_object_of_its_outcome(outcome: Outcome) -> None:
    """The body is filled into a fixed text: it must still be this JSON, exactly."""
    body = json.loads(completion_body(outcome))
    usage = None
    if outcome.prompt_tokens is not None and outcome.completion_tokens is not None:
        total = outcome.prompt_tokens + outcome.completion_tokens
        usage = {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": total,
        }
    assert isinstance(body.pop("created"), int)
    assert body.pop("id").startswith("chatcmpl-" + (outcome.result_id or ""))
    assert body == {
        "object": "chat.completion",
        "model": outcome.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": outcome.content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }
