"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genkeep.core.types import RequestModel, Seconds
from genkeep.db.models import Prompt, Result
from genkeep.db.prompts import Duplicate
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.outcome import Outcome


class CacheDirectives(RequestModel):
    """Cache control in the body; the ``Cache-Control`` request header does the same."""

    no_cache: bool = Field(False, description="Generate anew as a new result version.")
    no_store: bool = Field(False, description="Do not persist this generation.")
    max_age: Seconds | None = Field(
        None, description="Accept a stored result only if younger than this (seconds)."
    )


# At least one character that is not whitespace (a blank prompt normalizes to nothing).
PROMPT_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


class GenerateRequest(RequestModel):
    prompt: str = Field(
        min_length=1,
        description="The prompt; normalized (NFKC, case-folded, whitespace "
        "collapsed) to find a stored result. At most GENKEEP_MAX_PROMPT_BYTES bytes "
        "of UTF-8 (413 above).",
        json_schema_extra={"pattern": PROMPT_PATTERN},
    )
    profile: str | None = Field(None, description="Generator profile; the default if omitted.")
    cache: CacheDirectives | None = None

    def cache_control(self, header: str | None) -> CacheControl:
        parsed = CacheControl.parse(header)
        if self.cache is None:
            return parsed
        return CacheControl(
            no_cache=parsed.no_cache or self.cache.no_cache,
            no_store=parsed.no_store or self.cache.no_store,
            max_age=float(self.cache.max_age) if self.cache.max_age is not None else parsed.max_age,
        )


class GenerateResponse(BaseModel):
    prompt_id: str | None = Field(description="None when nothing was persisted.")
    result_id: str | None
    version: int | None = Field(description="None until the result is committed.")
    content: str
    content_sha256: str
    model: str
    source: str
    cached: bool = Field(description="Answered from a stored result without a generator call.")
    coalesced: bool = Field(description="Waited for a concurrent identical request's generation.")
    persisted: bool = Field(description="The result was committed before this response.")
    prompt_tokens: int | None = Field(None, description="Usage the generator reported, if any.")
    completion_tokens: int | None = Field(None, description="Usage the generator reported, if any.")
    details: dict[str, Any] | None = Field(
        None,
        description="What an OpenAI-compatible answer said beside its text (finish_reason, "
        "tool calls, reasoning, usage details, system_fingerprint), as stored with the result.",
    )

    @classmethod
    def of(cls, outcome: Outcome) -> GenerateResponse:
        return cls(**{name: getattr(outcome, name) for name in cls.model_fields})


class ResultSummary(BaseModel):
    id: str
    version: int
    source: str
    model: str
    content_sha256: str
    created_at: datetime

    @classmethod
    def of(cls, result: Result) -> ResultSummary:
        return cls.model_validate(result, from_attributes=True)


class ResultOut(ResultSummary):
    prompt_id: str
    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    edited_from_id: str | None

    @classmethod
    def of(cls, result: Result) -> ResultOut:
        return cls.model_validate(result, from_attributes=True)


class PromptSummary(BaseModel):
    """One line of the prompt list."""

    id: str
    prompt: str
    profile: str
    status: str
    latest_result_id: str | None
    latest_version: int
    created_at: datetime

    @classmethod
    def of(cls, prompt: Prompt) -> PromptSummary:
        return cls(
            id=prompt.id,
            prompt=prompt.prompt_text,
            profile=prompt.profile_name,
            status=prompt.status,
            latest_result_id=prompt.latest_result_id,
            latest_version=prompt.latest_version,
            created_at=prompt.created_at,
        )


class PromptOut(BaseModel):
    id: str
    prompt: str
    normalized: str
    profile: str
    status: str
    last_error: str | None
    latest_result_id: str | None
    latest_version: int
    created_at: datetime
    results: list[ResultSummary]

    @classmethod
    def of(cls, prompt: Prompt, results: list[Result]) -> PromptOut:
        return cls(
            id=prompt.id,
            prompt=prompt.prompt_text,
            normalized=prompt.normalized_text,
            profile=prompt.profile_name,
            status=prompt.status,
            last_error=prompt.last_error,
            latest_result_id=prompt.latest_result_id,
            latest_version=prompt.latest_version,
            created_at=prompt.created_at,
            results=[ResultSummary.of(r) for r in results],
        )


class EditRequest(RequestModel):
    content: str = Field(min_length=1, description="The edited content (markdown).")


# Rendering raw content costs CPU in proportion to its size (a PDF of 1 MB took 22 s).
MAX_EXPORT_CONTENT_CHARS = 200_000
_ONE_SOURCE: dict[str, Any] = {
    "oneOf": [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("result_id", "prompt_id", "content")
    ]
}


class ExportRequest(RequestModel):
    """Exactly one of result_id, prompt_id (its latest result) or raw content (legacy)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_ONE_SOURCE)

    result_id: str | None = None
    prompt_id: str | None = None
    content: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_EXPORT_CONTENT_CHARS,
        description="Raw content; the export is marked unpersisted.",
    )
    format: Literal["pdf", "docx", "md", "html"] = "pdf"
    title: str | None = Field(None, max_length=300)

    @model_validator(mode="after")
    def _one_source(self) -> ExportRequest:
        given = [n for n in ("result_id", "prompt_id", "content") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of result_id, prompt_id or content")
        return self


class DuplicateOut(BaseModel):
    """Prompts of one owner stored twice or more for one (profile, normalized prompt)."""

    profile_key: str
    normalized_hash: str
    count: int
    prompt_ids: list[str] = Field(description="Oldest first.")

    @classmethod
    def of(cls, duplicate: Duplicate) -> DuplicateOut:
        return cls(
            profile_key=duplicate.profile_key,
            normalized_hash=duplicate.normalized_hash,
            count=duplicate.count,
            prompt_ids=duplicate.prompt_ids,
        )
