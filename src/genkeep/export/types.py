"""The plain types of exports: formats, provenance and a rendered file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

ExportFormat = Literal["pdf", "docx", "md", "html"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)


@dataclass(frozen=True, slots=True)
class ExportMeta:
    """Provenance printed into an export; ``persisted`` is False for raw client content."""

    result_id: str | None
    prompt_id: str | None
    content_sha256: str
    source: str
    persisted: bool


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """The bytes of one export and how to serve them."""

    data: bytes
    media_type: str
    extension: str
