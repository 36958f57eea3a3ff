"""Answers of the OpenAI-compatible routes: completions, genkeep's fields, models, errors."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel

from genkeep.generate.outcome import Outcome


def completion_id(result_id: str | None) -> str:
    """Stored answers are named by their result; others get a fresh id."""
    return f"chatcmpl-{result_id or uuid.uuid4().hex}"


def usage_of(outcome: Outcome) -> dict[str, Any] | None:
    """The usage as the generator reported it, details included; on a hit, the prompt is
    reported cached in full (``prompt_tokens_details.cached_tokens``): cost trackers
    (LangChain, litellm) then price it as a cached prompt, and the ``genkeep`` object says
    that nothing was spent at all."""
    prompt, completion = outcome.prompt_tokens, outcome.completion_tokens
    if prompt is None or completion is None:
        return None
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    details = outcome.details
    if details is not None and "usage" in details:
        usage.update(details["usage"])
    if outcome.cached:
        usage["prompt_tokens_details"] = {
            **(usage.get("prompt_tokens_details") or {}),
            "cached_tokens": prompt,
        }
    return usage


def message_of(outcome: Outcome) -> dict[str, Any]:
    """The assistant message: its text and every field the generator sent beside it."""
    details = outcome.details or {}
    content = None if details.get("null_content") else outcome.content
    return {"role": "assistant", "content": content, "refusal": None, **details.get("message", {})}


def finish_reason_of(outcome: Outcome) -> str:
    found: str = (outcome.details or {}).get("finish_reason", "stop")
    return found


def completion_body(outcome: Outcome) -> bytes:
    """A ``chat.completion`` object for ``outcome``, encoded.

    Filled into a fixed text rather than encoded from a dict: on a cache hit, encoding the
    nested object cost a tenth of the request. Strings go through ``json``'s own escaping.
    """
    details = outcome.details
    usage = usage_of(outcome)
    if details is None:
        message = _PLAIN_MESSAGE.format(content=_string(outcome.content))
        finish, fingerprint = '"stop"', "null"
    else:
        message = _ENCODER.encode(message_of(outcome))
        finish = _string(finish_reason_of(outcome))
        fingerprint = _ENCODER.encode(details.get("system_fingerprint"))
    if usage is None:
        usage_text = "null"
    elif details is None or "usage" not in details:
        template = _USAGE_CACHED if outcome.cached else _USAGE
        usage_text = template.format(
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            total_tokens=usage["total_tokens"],
        )
    else:
        usage_text = _ENCODER.encode(usage)
    return _COMPLETION.format(
        id=_string(completion_id(outcome.result_id)),
        created=int(time.time()),
        model=_string(outcome.model),
        fingerprint=fingerprint,
        message=message,
        finish=finish,
        usage=usage_text,
        genkeep=_GENKEEP.format(
            result_id=_optional(outcome.result_id),
            prompt_id=_optional(outcome.prompt_id),
            version="null" if outcome.version is None else outcome.version,
            content_sha256=_string(outcome.content_sha256),
            cached=_JSON_BOOLEAN[outcome.cached],
            coalesced=_JSON_BOOLEAN[outcome.coalesced],
            persisted=_JSON_BOOLEAN[outcome.persisted],
        ),
    ).encode()


def _optional(value: str | None) -> str:
    return "null" if value is None else _string(value)


# json's own escaping of a string, as an encoder with ensure_ascii=False does it.
_string = json.encoder.encode_basestring
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPLETION = (
    '{{"id":{id},"object":"chat.completion","created":{created},"model":{model},'
    '"system_fingerprint":{fingerprint},"choices":[{{"index":0,"message":{message},'
    '"logprobs":null,"finish_reason":{finish}}}],"usage":{usage},"genkeep":{genkeep}}}'
)
_PLAIN_MESSAGE = '{{"role":"assistant","content":{content},"refusal":null}}'
_USAGE = (
    '{{"prompt_tokens":{prompt_tokens},"completion_tokens":{completion_tokens},'
    '"total_tokens":{total_tokens}}}'
)
_USAGE_CACHED = (
    '{{"prompt_tokens":{prompt_tokens},"completion_tokens":{completion_tokens},'
    '"total_tokens":{total_tokens},"prompt_tokens_details":{{"cached_tokens":{prompt_tokens}}}}}'
)
# genkeep_fields, in its order.
_GENKEEP = (
    '{{"result_id":{result_id},"prompt_id":{prompt_id},"version":{version},'
    '"content_sha256":{content_sha256},"cached":{cached},"coalesced":{coalesced},'
    '"persisted":{persisted}}}'
)
_JSON_BOOLEAN = {True: "true", False: "false"}


RawHeaders = list[tuple[bytes, bytes]]
_BOOLEAN = {True: b"true", False: b"false"}


def genkeep_headers(outcome: Outcome) -> RawHeaders:
    """What genkeep did, for clients that read headers (``with_raw_response``); encoded as
    ASGI sends them (Starlette's per-response encoding of each name costs a hit's time)."""
    headers = [
        (b"x-genkeep-cached", _BOOLEAN[outcome.cached]),
        (b"x-genkeep-coalesced", _BOOLEAN[outcome.coalesced]),
        (b"x-genkeep-persisted", _BOOLEAN[outcome.persisted]),
        (b"x-genkeep-content-sha256", outcome.content_sha256.encode()),
    ]
    if outcome.result_id is not None:
        headers.append((b"x-genkeep-result-id", outcome.result_id.encode()))
    if outcome.prompt_id is not None:
        headers.append((b"x-genkeep-prompt-id", outcome.prompt_id.encode()))
    if outcome.version is not None:
        headers.append((b"x-genkeep-version", str(outcome.version).encode()))
    return headers


def genkeep_fields(outcome: Outcome) -> dict[str, Any]:
    """The same as the ``genkeep`` object of an answer (in a stream's last chunk, whose
    headers went out before the result): ``cached`` true means nothing was spent."""
    return {
        "result_id": outcome.result_id,
        "prompt_id": outcome.prompt_id,
        "version": outcome.version,
        "content_sha256": outcome.content_sha256,
        "cached": outcome.cached,
        "coalesced": outcome.coalesced,
        "persisted": outcome.persisted,
    }


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "genkeep"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape, which the SDKs read to raise their error classes."""

    error: ErrorObject
