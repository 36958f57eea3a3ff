"""An upstream chat answer as genkeep stores it: the text, and every field beside it.

OpenAI-compatible servers send more than text: a finish reason, tool calls, reasoning
(``reasoning_content``, ``reasoning``, as providers name it), a refusal, usage details and a
system fingerprint. All of it goes into ``Generation.details`` so that a hit replays it.
"""

from __future__ import annotations

from typing import Any

from genkeep.config import GeneratorProfile
from genkeep.core.generation import Generation
from genkeep.errors import GenerationFailed

# The message fields the response writes itself; every other one is kept as sent.
_OWN_FIELDS = frozenset({"role", "content"})


def _dump(value: Any) -> dict[str, Any]:
    """An SDK object (extras included) or a dict as plain JSON, without null fields."""
    if value is None:
        return {}
    found = value.model_dump(mode="json") if hasattr(value, "model_dump") else dict(value)
    return {k: v for k, v in found.items() if v is not None}


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def answer_details(
    *,
    finish_reason: object,
    message: dict[str, Any],
    null_content: bool,
    usage: dict[str, Any],
    system_fingerprint: object,
) -> dict[str, Any] | None:
    details: dict[str, Any] = {}
    if isinstance(finish_reason, str) and finish_reason != "stop":
        details["finish_reason"] = finish_reason
    extra = {k: v for k, v in message.items() if k not in _OWN_FIELDS and v not in ([], {})}
    if extra:
        details["message"] = extra
    if null_content:
        details["null_content"] = True
    # The counts are columns of their own; only what lies beyond them is a detail.
    beyond = {
        k: v
        for k, v in usage.items()
        if k not in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    if beyond:
        details["usage"] = beyond
    if isinstance(system_fingerprint, str):
        details["system_fingerprint"] = system_fingerprint
    return details or None


def generation_of(completion: Any, profile: GeneratorProfile) -> Generation:
    """A whole ``chat.completion``, validated by hand (the SDK does not, without strict mode)."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise GenerationFailed("generator's answer is not a chat completion", reason="bad-body")
    choice = choices[0]
    message = _dump(getattr(choice, "message", None))
    content = message.get("content")
    finish = getattr(choice, "finish_reason", None)
    if content is not None and not isinstance(content, str):
        raise GenerationFailed("generator's answer is not a chat completion", reason="bad-body")
    if not (content or "").strip() and not message.get("tool_calls"):
        raise GenerationFailed(
            f"generator sent empty content (finish_reason={str(finish)[:40]})", reason="empty"
        )
    model = getattr(completion, "model", None)
    usage = _dump(getattr(completion, "usage", None))
    return Generation(
        content=content or "",
        model=model if isinstance(model, str) and model else profile.model,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        details=answer_details(
            finish_reason=finish,
            message=message,
            null_content=content is None,
            usage=usage,
            system_fingerprint=getattr(completion, "system_fingerprint", None),
        ),
    )


class StreamedAnswer:
    """The chunks of a streamed answer, gathered into what a whole answer would have said."""

    def __init__(self, profile: GeneratorProfile) -> None:
        self.profile = profile
        self.model: str | None = None
        self.parts: list[str] = []
        self.extra: dict[str, Any] = {}  # message fields beside content, text joined
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: object = None
        self.usage: dict[str, Any] = {}
        self.system_fingerprint: object = None

    def add(self, chunk: Any) -> str | None:
        """Take one chunk; returns its content piece, if it has one."""
        name = getattr(chunk, "model", None)
        # The first name the upstream gives is the stream's: every piece was shown with it.
        self.model = self.model or (name if isinstance(name, str) and name else None)
        self.system_fingerprint = self.system_fingerprint or getattr(
            chunk, "system_fingerprint", None
        )
        self.usage = _dump(getattr(chunk, "usage", None)) or self.usage
        piece: str | None = None
        for choice in getattr(chunk, "choices", None) or ():
            self.finish_reason = getattr(choice, "finish_reason", None) or self.finish_reason
            delta = _dump(getattr(choice, "delta", None))
            for call in delta.pop("tool_calls", None) or ():
                self._add_tool_call(call)
            content = delta.pop("content", None)
            if isinstance(content, str) and content:
                self.parts.append(content)
                piece = content
            for key, value in delta.items():
                if key == "role":
                    continue
                if isinstance(value, str):
                    self.extra[key] = self.extra.get(key, "") + value
                else:
                    self.extra[key] = value
        return piece

    def _add_tool_call(self, delta: dict[str, Any]) -> None:
        found = self.tool_calls.setdefault(
            int(delta.get("index", 0)), {"id": "", "type": "function", "function": {}}
        )
        if delta.get("id"):
            found["id"] = delta["id"]
        if delta.get("type"):
            found["type"] = delta["type"]
        function = found["function"]
        for key, value in (delta.get("function") or {}).items():
            if isinstance(value, str):
                function[key] = function.get(key, "") + value

    def generation(self) -> Generation:
        content = "".join(self.parts)
        message = dict(self.extra)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        if not content.strip() and not self.tool_calls:
            raise GenerationFailed("generator streamed empty content", reason="empty")
        return Generation(
            content=content,
            model=self.model or self.profile.model,
            prompt_tokens=_count(self.usage.get("prompt_tokens")),
            completion_tokens=_count(self.usage.get("completion_tokens")),
            details=answer_details(
                finish_reason=self.finish_reason,
                message=message,
                null_content=not self.parts and bool(self.tool_calls),
                usage=self.usage,
                system_fingerprint=self.system_fingerprint,
            ),
        )
