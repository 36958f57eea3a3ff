"""A chat completion request as genkeep keys and forwards it (I1 for /v1/chat/completions).

The key is the owner, the profile (with the API and normalization named, so a chat never
shares a row with a ``/v1/generate`` prompt) and a canonical JSON of everything that changes
the answer: messages with roles and names, sampling parameters, stop sequences, seed and
response format. Message text is normalized per profile: ``whitespace`` (collapse runs of
whitespace, trim: the default, case kept because case matters in code), ``seed`` (what
``/v1/generate`` does: NFKC, case folding, whitespace) or ``exact``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from genkeep.config import GeneratorProfile
from genkeep.core.hashes import sha256_hex
from genkeep.db.prompts import PromptKey
from genkeep.errors import BadInput, ContextLengthExceeded
from genkeep.generate.normalize import normalize_prompt
from genkeep.generate.normalize import profile_key as hash_profile

Normalization = Literal["whitespace", "seed", "exact"]
# Bumped when the canonical form changes, so old rows are never read under a new meaning.
_CANONICAL_VERSION = 1
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message; ``content`` is a string or, as the client sent it, a tuple of text parts."""

    role: str
    content: str | tuple[str, ...]
    name: str | None = None

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "\n".join(self.content)


@dataclass(frozen=True, slots=True)
class ChatCall:
    """What a chat generator is asked; every field but ``max_tokens_param`` is in the key."""

    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = field(default=None, hash=False)
    # The name the client used (max_tokens or max_completion_tokens), forwarded as such.
    max_tokens_param: str = field(default="max_tokens", compare=False)

    def with_profile_defaults(self, profile: GeneratorProfile) -> ChatCall:
        """The profile's temperature and max_tokens apply where the request sets none."""
        temperature = self.temperature if self.temperature is not None else profile.temperature
        max_tokens = self.max_tokens if self.max_tokens is not None else profile.max_tokens
        if temperature == self.temperature and max_tokens == self.max_tokens:
            return self
        return replace(self, temperature=temperature, max_tokens=max_tokens)

    def canonical(self, normalization: Normalization) -> tuple[str, str]:
        """The request as sent and under ``normalization``: one JSON text per distinct answer.

        Built in a fixed key order (response_format was sorted when the call was made), so
        no sorting is needed on the hot path.
        """
        params: dict[str, Any] = {}
        for name in _PARAMETERS:
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        if self.stop:
            # Stop sequences are a set: order and repeats do not change the answer.
            params["stop"] = sorted(set(self.stop))
        if self.response_format is not None and self.response_format.get("type") != "text":
            params["response_format"] = self.response_format
        messages = [_message(m, "exact") for m in self.messages]
        exact = _dumps(messages, params)
        if normalization == "exact":
            return exact, exact
        normalized = [_message(m, normalization) for m in self.messages]
        # Most messages are already in normal form: the same text, encoded once.
        return exact, exact if normalized == messages else _dumps(normalized, params)


_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
)


# One encoder: json.dumps with options builds a new one per call, on every cache hit.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return _ENCODER.encode({"v": _CANONICAL_VERSION, "messages": messages, **params})


def stored_call(prompt_text: str) -> ChatCall:
    """The call a chat prompt row was made from (its prompt text is the exact canonical form)."""
    body = json.loads(prompt_text)
    messages = tuple(
        ChatMessage(
            role=m["role"],
            content=m["content"] if isinstance(m["content"], str) else tuple(m["content"]),
            name=m.get("name"),
        )
        for m in body["messages"]
    )
    params = {name: body[name] for name in _PARAMETERS if name in body}
    return ChatCall(
        messages=messages,
        stop=tuple(body.get("stop", ())),
        response_format=body.get("response_format"),
        **params,
    )


def normalize_text(text: str, normalization: Normalization) -> str:
    if normalization == "exact":
        return text
    if normalization == "seed":
        return normalize_prompt(text)
    return _WHITESPACE.sub(" ", text).strip()


def _message(message: ChatMessage, normalization: Normalization) -> dict[str, Any]:
    content: str | list[str]
    if normalization == "exact" and isinstance(message.content, str):
        content = message.content
    elif isinstance(message.content, str):
        content = normalize_text(message.content, normalization)
    elif len(message.content) == 1:
        # One text part says exactly what the same string says.
        content = normalize_text(message.content[0], normalization)
    else:
        content = [normalize_text(part, normalization) for part in message.content]
    found: dict[str, Any] = {"role": message.role, "content": content}
    if message.name is not None:
        found["name"] = message.name
    return found


def chat_profile_key(profile: GeneratorProfile) -> str:
    """The profile part of a chat key; differs from ``/v1/generate``'s for the same profile."""
    return hash_profile(
        {
            "api": "chat.completions",
            "profile": profile.key_material(),
            "normalization": profile.chat_normalization,
        }
    )


def chat_key(
    owner_id: str,
    profile_name: str,
    profile: GeneratorProfile,
    call: ChatCall,
    *,
    max_bytes: int,
    profile_key: str,
) -> PromptKey:
    """The prompt row key of ``call`` (``profile_key`` from ``chat_profile_key``)."""
    prompt_text, normalized = call.canonical(profile.chat_normalization)
    try:
        size = len(prompt_text.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadInput(
            "the request holds text that is not valid Unicode (a lone surrogate)"
        ) from None
    if size > max_bytes:
        raise ContextLengthExceeded(
            f"The messages are {size} bytes, more than this server's limit of {max_bytes} "
            "bytes (GENKEEP_MAX_CHAT_BYTES). Please reduce the length of the messages."
        )
    return PromptKey(
        owner_id=owner_id,
        profile_name=profile_name,
        profile_key=profile_key,
        normalized_hash=sha256_hex(normalized),
        normalized_text=normalized,
        prompt_text=prompt_text,
    )
