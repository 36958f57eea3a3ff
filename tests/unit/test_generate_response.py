"""The hot routes serialize an Outcome directly: what they send must be their documents'."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

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
    usage: dict[str, Any] | None = None
    if outcome.prompt_tokens is not None and outcome.completion_tokens is not None:
        total = outcome.prompt_tokens + outcome.completion_tokens
        usage = {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": total,
        }
        if outcome.cached:
            # A hit reports its whole prompt as cached, for cost trackers.
            usage["prompt_tokens_details"] = {"cached_tokens": outcome.prompt_tokens}
    assert isinstance(body.pop("created"), int)
    assert body.pop("genkeep") == {
        "result_id": outcome.result_id,
        "prompt_id": outcome.prompt_id,
        "version": outcome.version,
        "content_sha256": outcome.content_sha256,
        "cached": outcome.cached,
        "coalesced": outcome.coalesced,
        "persisted": outcome.persisted,
    }
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


def test_a_hit_replays_every_field_its_miss_returned() -> None:
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    details = {
        "finish_reason": "tool_calls",
        "message": {"tool_calls": [tool_call], "reasoning_content": "think"},
        "null_content": True,
        "usage": {
            "completion_tokens_details": {"reasoning_tokens": 5},
            "prompt_tokens_details": {"cached_tokens": 1, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_1",
    }
    hit = Outcome("p", "r", 1, "", "s", "m", "generated", True, False, True, 10, 8, details)
    body = json.loads(completion_body(hit))
    assert body["system_fingerprint"] == "fp_1"
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [tool_call],
        "reasoning_content": "think",
    }
    assert body["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 8,
        "total_tokens": 18,
        "completion_tokens_details": {"reasoning_tokens": 5},
        "prompt_tokens_details": {"cached_tokens": 10, "audio_tokens": 0},
    }
