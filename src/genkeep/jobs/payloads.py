"""The payloads of the built-in task kinds, checked at submit and read again by their handlers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genkeep.core.types import NonNegativeInt32, PositiveInt32
from genkeep.export.types import ExportFormat


class ExportPayload(BaseModel):
    """Formats to render and the source: a result, a prompt's latest result, or the sections."""

    model_config = ConfigDict(extra="forbid", strict=True)

    formats: list[ExportFormat] = Field(
        min_length=1, max_length=4, json_schema_extra={"uniqueItems": True}
    )
    result_id: str | None = None
    prompt_id: str | None = None
    title: str | None = Field(None, max_length=300)

    @model_validator(mode="after")
    def _check(self) -> ExportPayload:
        if len(set(self.formats)) != len(self.formats):
            raise ValueError("formats must not repeat")
        if self.result_id and self.prompt_id:
            raise ValueError("give result_id or prompt_id, not both")
        return self

    @property
    def uses_sections(self) -> bool:
        return self.result_id is None and self.prompt_id is None


class GeneratePayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    profile: str | None = None


class ExtractPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str
    ontology: str = Field(min_length=1)
    ontology_name: str = "ontology.ttl"
    input_name: str = "input.txt"
    extractor: str | None = None  # unset: the worker's default (ner when installed)
    # Unset: the GENKEEP_EXTRACT_* settings of the worker that starts the run.
    chunk_size: PositiveInt32 | None = Field(None)
    overlap: NonNegativeInt32 | None = Field(None)
    batch_size: PositiveInt32 | None = Field(None)
    # Batches in flight at once across the worker fleet; unset: GENKEEP_EXTRACT_RUN_CONCURRENCY.
    concurrency: PositiveInt32 | None = Field(None)

    @model_validator(mode="after")
    def _check(self) -> ExtractPayload:
        if (
            self.overlap is not None
            and self.chunk_size is not None
            and self.overlap >= self.chunk_size
        ):
            raise ValueError("overlap must be smaller than chunk_size")
        return self
