"""The chat request of the OpenAI-compatible routes: what genkeep accepts, and how it keys it.

What changes an answer and genkeep can key is accepted (tools and tool calls included); what
it cannot serve from one stored answer (several choices, log probabilities, audio and
images, the deprecated ``functions``) is refused by name.
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


TEXT_PART_REF = {"$ref": "#/components/schemas/TextPart"}


class FunctionCallIn(BaseModel):
    """The function an assistant called, with its arguments as the model wrote them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    arguments: str


class ToolCallIn(BaseModel):
    """One tool call of an assistant message, as an earlier answer returned it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    type: Literal["function"] = "function"
    function: FunctionCallIn

    def as_wire(self) -> dict[str, Any]:
        # Built by hand: pydantic's model_dump costs a tool-using chat hit a tenth of its time.
        function = {"name": self.function.name, "arguments": self.function.arguments}
        return {"id": self.id, "type": self.type, "function": function}


class FunctionIn(BaseModel):
    """A function a model may call; its parameters are a JSON schema, passed on as sent."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["function"]
    function: FunctionIn

    def as_wire(self) -> dict[str, Any]:
        """The tool as OpenAI takes it, unset fields left out (``model_dump``, by hand)."""
        declared = self.function
        function: dict[str, Any] = {"name": declared.name}
        if declared.description is not None:
            function["description"] = declared.description
        if declared.parameters is not None:
            function["parameters"] = declared.parameters
        if declared.strict is not None:
            function["strict"] = declared.strict
        return {"type": self.type, "function": function}


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str


class NamedToolChoice(BaseModel):
    """``tool_choice`` naming the one function the model must call."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["function"]
    function: NamedFunction


_CONTENT: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART_REF}]
}
_ABSENT = {"type": "null"}
_TOOL_CALLS = {"type": "array", "items": {"$ref": "#/components/schemas/ToolCallIn"}}


def _message_schema(schema: dict[str, Any]) -> None:
    """The rules ``_well_formed`` checks, by role, so the document offers what is accepted."""
    common = {
        "name": {"anyOf": [{"type": "string"}, _ABSENT]},
        "refusal": {"anyOf": [{"type": "string"}, _ABSENT]},
        "function_call": _ABSENT,
        "audio": _ABSENT,
    }

    def shape(role: Any, required: list[str], **properties: Any) -> dict[str, Any]:
        found = {"role": role, **common, **properties}
        found.setdefault("content", _CONTENT)
        found.setdefault("tool_calls", _ABSENT)
        found.setdefault("tool_call_id", _ABSENT)
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["role", *required],
            "properties": found,
        }

    schema.clear()
    schema["oneOf"] = [
        shape({"enum": ["system", "developer", "user"]}, ["content"]),
        shape({"const": "tool"}, ["content", "tool_call_id"], tool_call_id={"type": "string"}),
        shape(
            {"const": "assistant"},
            ["content"],
            tool_calls={"anyOf": [_TOOL_CALLS, _ABSENT]},
        ),
        shape(
            {"const": "assistant"},
            ["tool_calls"],
            content=_ABSENT,
            tool_calls={**_TOOL_CALLS, "minItems": 1},
        ),
    ]


class MessageIn(BaseModel):
    """A message: text for every role; an assistant's may hold tool calls instead, and a
    tool message answers one of them by its id."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_message_schema)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = Field(
        None,
        json_schema_extra=_published(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": TEXT_PART_REF},
                    {"type": "null"},
                ]
            }
        ),
    )
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    function_call: Any = Field(
        None, description=f"Refused: function calls {_UNSUPPORTED}.", json_schema_extra=_NULL_ONLY
    )
    audio: Any = Field(
        None, description=f"Refused: audio {_UNSUPPORTED}.", json_schema_extra=_NULL_ONLY
    )

    @field_validator("function_call", "audio")
    @classmethod
    def _refused(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            raise ValueError(f"'{info.field_name}' {_UNSUPPORTED}")
        return value

    @model_validator(mode="after")
    def _well_formed(self) -> MessageIn:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("a message needs 'content' (only an assistant's may hold tool_calls)")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only an assistant message has 'tool_calls'")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs 'tool_call_id', and only a tool message has it")
        texts = (
            [self.content]
            if isinstance(self.content, str)
            else [p.text for p in self.content or ()]
        )
        # Stored as text: PostgreSQL keeps no NUL, and UTF-8 no lone surrogate.
        for text in texts:
            if text and "\x00" in text:
                raise ValueError("message text must not contain NUL characters")
        return self

    def to_message(self) -> ChatMessage:
        content = self.content
        text = (
            content
            if content is None or isinstance(content, str)
            else tuple(p.text or "" for p in content)
        )
        calls = None if self.tool_calls is None else tuple(c.as_wire() for c in self.tool_calls)
        return ChatMessage(
            role=self.role,
            content=text,
            name=self.name,
            tool_calls=calls,
            tool_call_id=self.tool_call_id,
        )


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
    # Keyed and forwarded: tools change what the model may answer.
    tools: list[ToolIn] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
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
            tools=tuple(t.as_wire() for t in self.tools) if self.tools is not None else None,
            tool_choice=self.tool_choice.model_dump()
            if isinstance(self.tool_choice, NamedToolChoice)
            else self.tool_choice,
            parallel_tool_calls=self.parallel_tool_calls,
        )


def _sorted(value: dict[str, Any]) -> dict[str, Any]:
    """The same object with every key sorted: a schema's key order does not change answers."""
    found: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True))
    return found
