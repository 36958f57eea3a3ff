"""Export formats and the one dispatcher that renders content into any of them."""

from __future__ import annotations

from genkeep.errors import BadInput
from genkeep.export.docx import render_docx
from genkeep.export.html import preview_page
from genkeep.export.pdf import render_pdf
from genkeep.export.types import EXPORT_FORMATS, ExportFormat, ExportMeta, RenderedFile


def render(content: str, fmt: ExportFormat, *, title: str, meta: ExportMeta) -> RenderedFile:
    """Render canonical markdown ``content`` as ``fmt``."""
    if fmt == "md":
        # Canonical content byte for byte: the sha256 in ``meta`` must match the download.
        return RenderedFile(content.encode("utf-8"), "text/markdown; charset=utf-8", "md")
    if fmt == "html":
        page = preview_page(content, title=title, meta=meta)
        return RenderedFile(page.encode("utf-8"), "text/html; charset=utf-8", "html")
    if fmt == "pdf":
        return RenderedFile(render_pdf(content, title=title, meta=meta), "application/pdf", "pdf")
    if fmt == "docx":
        return RenderedFile(
            render_docx(content, title=title, meta=meta),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
        )
    raise BadInput(f"unknown export format {fmt!r}", allowed=list(EXPORT_FORMATS))
