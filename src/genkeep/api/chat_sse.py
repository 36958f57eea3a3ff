"""A chat answer as OpenAI's Server-Sent Events: ``chat.completion.chunk`` objects, then [DONE]."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from genkeep.api.openai_errors import error_object
from genkeep.api.openai_responses import (
    RawHeaders,
    completion_id,
    finish_reason_of,
    genkeep_fields,
    genkeep_headers,
    message_of,
    usage_of,
)
from genkeep.errors import GenkeepError
from genkeep.generate.chat import ChatStream
from genkeep.generate.outcome import Outcome

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def event(data: dict[str, Any]) -> bytes:
    return (
        b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


def stream_headers(stream: ChatStream) -> RawHeaders:
    """Stored answers name their result now; a live one names it in its last chunk."""
    known = stream.known
    headers = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
    if known is not None:
        return headers + genkeep_headers(known)
    coalesced = b"false" if stream.led else b"true"
    return [*headers, (b"x-genkeep-cached", b"false"), (b"x-genkeep-coalesced", coalesced)]


async def chat_events(
    stream: ChatStream, include_usage: bool, unavailable: Callable[[BaseException], bool]
) -> AsyncIterator[bytes]:
    """The chunks of a streamed chat; ``unavailable`` tells an outage from a bug (the driver's)."""
    # One id and one model name for every chunk: a live stream's are the ones its result is
    # stored with, so the stream reads as its hits will.
    known, feed = stream.known, stream.feed
    if known is not None:
        result_id, model = known.result_id, known.model
    else:
        assert feed is not None
        result_id, model = feed.result_id, feed.model or stream.model
    base = {
        "id": completion_id(result_id),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None if known is None else _fingerprint(known),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return event({**base, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""})
    try:
        if known is not None:
            # A stored answer says its reasoning first, as the live one did.
            extra = _extra_delta(known)
            if extra:
                yield chunk(extra)
        async for piece in stream.pieces():
            yield chunk({"content": piece})
        outcome = await stream.outcome()
    except Exception as exc:
        # The status line went out with the first byte: the error travels as an event.
        if not isinstance(exc, GenkeepError):
            log.exception("chat stream failed", exc_info=exc)
        yield event({"error": error_object(exc, unavailable(exc))})
        return
    base["system_fingerprint"] = _fingerprint(outcome)
    if known is None:
        # A live stream carried text only; what the answer said beside it comes now.
        extra = _extra_delta(outcome)
        if extra:
            yield chunk(extra)
    for index, call in enumerate(message_of(outcome).get("tool_calls") or ()):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, finish_reason_of(outcome), genkeep=genkeep_fields(outcome))
    if include_usage:
        yield event({**base, "choices": [], "usage": usage_of(outcome)})
    yield DONE


def _fingerprint(outcome: Outcome) -> str | None:
    found: str | None = (outcome.details or {}).get("system_fingerprint")
    return found


def _extra_delta(outcome: Outcome) -> dict[str, Any]:
    """The message fields beside content and tool calls (reasoning, refusal), as one delta."""
    if outcome.details is None:
        return {}
    extra = dict(outcome.details.get("message", {}))
    extra.pop("tool_calls", None)
    return extra
