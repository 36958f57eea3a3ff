"""The chat request of the OpenAI-compatible routes: what genkeep accepts, and how it keys it.

What changes an answer and genkeep can key is accepted; what it cannot serve from one stored
text (several choices, tools, log probabilities, audio and images) is refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from genkeep.core.types import Int64, JsonInt, PositiveInt32
from genkeep.generate.chat_key import ChatCall, ChatMessage

_UNSUPPORTED = "is not supported by genkeep"


def _published(schema: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` that publishes exactly what the validators accept.

    The validators refuse by name (an SDK shows the message); the document must not offer
    what they refuse, or a schema-valid request would be refused (the API contract's rule).
    """

    def publish(field: dict[str, Any]) -> None:
        description = field.get("description")
        field.clear()
        field.update(schema)
        if description:
            field["description"] = description

    return publish


_NULL_ONLY = _published({"type": "null"})


def _text_part_schema(schema: dict[str, Any]) -> None:
    schema["properties"]["type"] = {"const": "text", "title": "Type"}
    schema["properties"]["text"] = {"type": "string", "title": "Text"}
    schema["required"] = ["type", "text"]


class TextPart(BaseModel):
    """A content part; only text parts can be keyed and stored."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra=_text_part_schema)

    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_only(self) -> TextPart:
        if self.type != "text":
            raise ValueError(f"content parts of type '{self.type}' are not supported; text only")
        if self.text is None:
            raise ValueError("a text part needs 'text'")
        return self


def _message_schema(schema: dict[str, Any]) -> None:
    schema["required"] = [*schema.get("required", ()), "content"]


TEXT_PART_REF = {"$ref": "#/components/schemas/TextPart"}


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_message_schema)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = Field(
        None,
        json_schema_extra=_published(
            {"anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART_REF}]}
        ),
    )
    name: str | None = None
    refusal: str | None = None
    tool_calls: Any = Field(
        None, description=f"Refused: tool calls {_UNSUPPORTED}.", json_schema_extra=_NULL_ONLY
    )
    function_call: Any = Field(
        None, description=f"Refused: function calls {_UNSUPPORTED}.", json_schema_extra=_NULL_ONLY
    )
    audio: Any = Field(
        None, description=f"Refused: audio {_UNSUPPORTED}.", json_schema_extra=_NULL_ONLY
    )

    @field_validator("tool_calls", "function_call", "audio")
    @classmethod
    def _refused(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            raise ValueError(f"'{info.field_name}' {_UNSUPPORTED}")
        return value

    @model_validator(mode="after")
    def _has_content(self) -> MessageIn:
        if self.content is None:
            raise ValueError("a message needs 'content'")
        texts = [self.content] if isinstance(self.content, str) else [p.text for p in self.content]
        # Stored as text: PostgreSQL keeps no NUL, and UTF-8 no lone surrogate.
        for text in texts:
            if text and "\x00" in text:
                raise ValueError("message text must not contain NUL characters")
        return self

    def to_message(self) -> ChatMessage:
        content = self.content
        text = content if isinstance(content, str) else tuple(p.text or "" for p in content or ())
        return ChatMessage(role=self.role, content=text, name=self.name)


_RESPONSE_FORMAT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"enum": ["text", "json_object"]},
                "json_schema": {"type": "null"},
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "json_schema"],
            "properties": {
                "type": {"const": "json_schema"},
                # Free-form: genkeep.api.openapi publishes it as JsonValue (no NUL anywhere).
                "json_schema": {"type": "object", "additionalProperties": True},
            },
        },
    ]
}


def _response_format_schema(schema: dict[str, Any]) -> None:
    schema.clear()
    schema.update(_RESPONSE_FORMAT_SCHEMA)


class ResponseFormat(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=_response_format_schema
    )

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema_when_asked(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("'json_schema' is required with type json_schema, and only then")
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The Chat Completions request, as far as one stored answer can serve it."""

    # Strict as OpenAI is: `"logprobs": 0` or `"seed": "5"` is a 400, not taken as meant.
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, description="A genkeep generator profile (GET /v1/models).")
    messages: list[MessageIn] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: PositiveInt32 | None = None
    max_completion_tokens: PositiveInt32 | None = None
    stop: str | list[str] | None = Field(
        None,
        json_schema_extra=_published(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                    {"type": "null"},
                ]
            }
        ),
    )
    seed: Int64 | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    reasoning_effort: str | None = None
    response_format: ResponseFormat | None = None
    user: str | None = Field(None, description="Accepted; not part of the key, not forwarded.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Accepted and ignored: they do not change the answer.
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None
    # Refused unless they ask for nothing beyond one plain-text answer.
    n: JsonInt | None = Field(
        None,
        description="Only 1: one stored answer per request.",
        json_schema_extra=_published({"anyOf": [{"const": 1}, {"type": "null"}]}),
    )
    logprobs: bool | None = Field(
        None,
        description="Refused when true.",
        json_schema_extra=_published({"anyOf": [{"const": False}, {"type": "null"}]}),
    )
    top_logprobs: JsonInt | None = Field(None, description="Refused.", json_schema_extra=_NULL_ONLY)
    tools: Any = Field(None, description="Refused.", json_schema_extra=_NULL_ONLY)
    tool_choice: Any = Field(None, description="Refused.", json_schema_extra=_NULL_ONLY)
    functions: Any = Field(None, description="Refused.", json_schema_extra=_NULL_ONLY)
    function_call: Any = Field(None, description="Refused.", json_schema_extra=_NULL_ONLY)
    logit_bias: dict[str, float] | None = Field(
        None,
        description="Refused unless empty.",
        json_schema_extra=_published(
            {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]}
        ),
    )
    modalities: list[str] | None = Field(
        None,
        description="Only ['text'].",
        json_schema_extra=_published(
            {
                "anyOf": [
                    {"type": "array", "items": {"const": "text"}, "minItems": 1, "maxItems": 1},
                    {"type": "null"},
                ]
            }
        ),
    )
    audio: Any = Field(None, description="Refused.", json_schema_extra=_NULL_ONLY)
    prediction: Any = Field(None, description="Refused.", json_schema_extra=_NULL_ONLY)
    web_search_options: Any = Field(None, description="Refused.", json_schema_extra=_NULL_ONLY)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError(f"'n' > 1 {_UNSUPPORTED}: one stored answer per request")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError(f"'logprobs' {_UNSUPPORTED}")
        return value

    @field_validator(
        "top_logprobs",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "audio",
        "prediction",
        "web_search_options",
    )
    @classmethod
    def _refused(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            raise ValueError(f"'{info.field_name}' {_UNSUPPORTED}")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            raise ValueError(f"'logit_bias' {_UNSUPPORTED}")
        return value

    @field_validator("modalities")
    @classmethod
    def _text_only(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and value != ["text"]:
            raise ValueError(f"'modalities' other than ['text'] {_UNSUPPORTED}")
        return value

    @field_validator("stop")
    @classmethod
    def _four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def to_call(self) -> ChatCall:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        limit_name = "max_completion_tokens" if self.max_completion_tokens else "max_tokens"
        return ChatCall(
            messages=tuple(m.to_message() for m in self.messages),
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            stop=stop,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            reasoning_effort=self.reasoning_effort,
            response_format=_sorted(self.response_format.model_dump(exclude_none=True))
            if self.response_format
            else None,
            max_tokens_param=limit_name,
        )


def _sorted(value: dict[str, Any]) -> dict[str, Any]:
    """The same object with every key sorted: a schema's key order does not change answers."""
    found: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True))
    return found
