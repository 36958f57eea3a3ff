"""A chat completion request as genkeep keys and forwards it (I1 for /v1/chat/completions).

The key is the owner, the profile (with the API and normalization named, so a chat never
shares a row with a ``/v1/generate`` prompt) and a canonical JSON of everything that changes
the answer: messages with roles, names, tool calls and tool call ids, sampling parameters,
stop sequences, seed, response format, tools and tool choice. Message text is normalized per
profile: ``whitespace`` (the default: trailing spaces and runs of spaces inside a line go,
the common indentation goes, while relative indentation and line breaks stay, because they
carry meaning in code and YAML; case is kept), ``seed`` (what ``/v1/generate`` does: NFKC,
case folding, whitespace) or ``exact``.

Keys are versioned (``v`` in the canonical JSON). A request that version 1 could key is also
looked up under its version-1 key when its current key finds no row, and that row answers
only if its stored request still means the same under today's normalization.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from genkeep.config import GeneratorProfile
from genkeep.core.hashes import sha256_hex
from genkeep.db.prompts import LegacyKey, PromptKey
from genkeep.errors import BadInput, ContextLengthExceeded
from genkeep.generate.normalize import normalize_prompt
from genkeep.generate.normalize import profile_key as hash_profile

Normalization = Literal["whitespace", "seed", "exact"]
# Bumped when the canonical form changes, so old rows are never read under a new meaning.
# 1: whitespace collapsed everywhere (indentation and line breaks lost); no tools.
# 2: indentation and line breaks kept; tools, tool choice, tool calls and tool messages.
_CANONICAL_VERSION = 2
_WHITESPACE = re.compile(r"\s+")
_INNER_SPACE = re.compile(r"(?<=\S)[^\S\n]+")
# Whitespace that _keep_layout would change: anything but a single space between words.
_UNTIDY = re.compile(r"[^\S ]|  |^ | $")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message; ``content`` is a string, or as the client sent it a tuple of text parts,
    or None (an assistant message that only calls tools)."""

    role: str
    content: str | tuple[str, ...] | None
    name: str | None = None
    # An assistant's tool calls, as OpenAI shapes them; a tool message's call id.
    tool_calls: tuple[dict[str, Any], ...] | None = field(default=None, hash=False)
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "\n".join(self.content)

    def as_wire(self) -> dict[str, Any]:
        """The message as OpenAI's API takes it."""
        content: Any = (
            [{"type": "text", "text": part} for part in self.content]
            if isinstance(self.content, tuple)
            else self.content
        )
        sent: dict[str, Any] = {"role": self.role, "content": content}
        if self.name is not None:
            sent["name"] = self.name
        if self.tool_calls is not None:
            sent["tool_calls"] = list(self.tool_calls)
        if self.tool_call_id is not None:
            sent["tool_call_id"] = self.tool_call_id
        return sent


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
    # Tools as the client declared them, and how to use them.
    tools: tuple[dict[str, Any], ...] | None = field(default=None, hash=False)
    tool_choice: str | dict[str, Any] | None = field(default=None, hash=False)
    parallel_tool_calls: bool | None = None
    # The name the client used (max_tokens or max_completion_tokens), forwarded as such.
    max_tokens_param: str = field(default="max_tokens", compare=False)

    def with_profile_defaults(self, profile: GeneratorProfile) -> ChatCall:
        """The profile's temperature and max_tokens apply where the request sets none."""
        temperature = self.temperature if self.temperature is not None else profile.temperature
        max_tokens = self.max_tokens if self.max_tokens is not None else profile.max_tokens
        if temperature == self.temperature and max_tokens == self.max_tokens:
            return self
        return replace(self, temperature=temperature, max_tokens=max_tokens)

    @property
    def uses_tools(self) -> bool:
        """Whether anything of the call is about tools (version 1 keyed none of it)."""
        return (
            self.tools is not None
            or self.tool_choice is not None
            or self.parallel_tool_calls is not None
            or any(
                m.tool_calls is not None or m.tool_call_id is not None or m.content is None
                for m in self.messages
            )
        )

    def canonical(
        self, normalization: Normalization, version: int = _CANONICAL_VERSION
    ) -> tuple[str, str]:
        """The request as sent and under ``normalization``: one JSON text per distinct answer.

        Version 1 was built in a fixed key order (response_format sorted when the call was
        made); version 2 sorts every object's keys while encoding.
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
        for name in _TOOL_PARAMETERS:
            value = getattr(self, name)
            if value is not None:
                params[name] = list(value) if isinstance(value, tuple) else value
        messages = [_message(m, "exact", version) for m in self.messages]
        exact = _dumps(version, messages, params)
        if normalization == "exact":
            return exact, exact
        normalized = [_message(m, normalization, version) for m in self.messages]
        # Most messages are already in normal form: the same text, encoded once.
        return exact, exact if normalized == messages else _dumps(version, normalized, params)


_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
)
_TOOL_PARAMETERS = ("tools", "tool_choice", "parallel_tool_calls")


# One encoder each: json.dumps with options builds a new one per call, on every cache hit.
# Version 2 sorts every object's keys as it encodes (in C): a tool's JSON schema means the
# same in any key order, and sorting while encoding costs less than a sorted copy first.
_ENCODER_V1 = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _dumps(version: int, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    encoder = _ENCODER_V1 if version == 1 else _ENCODER
    return encoder.encode({"v": version, "messages": messages, **params})


def stored_call(prompt_text: str) -> ChatCall:
    """The call a chat prompt row was made from (its prompt text is the exact canonical form)."""
    body = json.loads(prompt_text)
    messages = tuple(
        ChatMessage(
            role=m["role"],
            content=m["content"]
            if m["content"] is None or isinstance(m["content"], str)
            else tuple(m["content"]),
            name=m.get("name"),
            tool_calls=tuple(m["tool_calls"]) if "tool_calls" in m else None,
            tool_call_id=m.get("tool_call_id"),
        )
        for m in body["messages"]
    )
    params = {name: body[name] for name in _PARAMETERS if name in body}
    return ChatCall(
        messages=messages,
        stop=tuple(body.get("stop", ())),
        response_format=body.get("response_format"),
        tools=tuple(body["tools"]) if "tools" in body else None,
        tool_choice=body.get("tool_choice"),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        **params,
    )


def normalize_text(
    text: str, normalization: Normalization, version: int = _CANONICAL_VERSION
) -> str:
    if normalization == "exact":
        return text
    if normalization == "seed":
        return normalize_prompt(text)
    if version == 1:
        return _WHITESPACE.sub(" ", text).strip()
    return _keep_layout(text)


def _keep_layout(text: str) -> str:
    """Whitespace that changes nothing goes; indentation and line breaks, which do, stay."""
    if _UNTIDY.search(text) is None:  # most messages: one line, single spaces
        return text
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) == 1:
        return _INNER_SPACE.sub(" ", text.strip())
    kept = "\n".join(_INNER_SPACE.sub(" ", line.rstrip()) for line in lines)
    return textwrap.dedent(kept).strip("\n")


def _message(message: ChatMessage, normalization: Normalization, version: int) -> dict[str, Any]:
    content: str | list[str] | None
    if message.content is None or (normalization == "exact" and isinstance(message.content, str)):
        content = message.content
    elif isinstance(message.content, str):
        content = normalize_text(message.content, normalization, version)
    elif len(message.content) == 1:
        # One text part says exactly what the same string says.
        content = normalize_text(message.content[0], normalization, version)
    else:
        content = [normalize_text(part, normalization, version) for part in message.content]
    found: dict[str, Any] = {"role": message.role, "content": content}
    if message.name is not None:
        found["name"] = message.name
    if message.tool_calls is not None:
        found["tool_calls"] = list(message.tool_calls)
    if message.tool_call_id is not None:
        found["tool_call_id"] = message.tool_call_id
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
        legacy=None if call.uses_tools else _legacy(call, profile.chat_normalization, normalized),
    )


def _legacy(
    call: ChatCall, normalization: Normalization, normalized: str
) -> Callable[[], LegacyKey]:
    """Where version 1 stored this request; computed only when the current key misses."""

    def legacy() -> LegacyKey:
        _, old = call.canonical(normalization, version=1)

        def same_meaning(prompt_text: str) -> bool:
            # The stored request, as sent, under today's normalization: version 1 also
            # joined requests that differ in indentation, and those must not share now.
            _, now = stored_call(prompt_text).canonical(normalization)
            return now == normalized

        return LegacyKey(normalized_hash=sha256_hex(old), same_meaning=same_meaning)

    return legacy
