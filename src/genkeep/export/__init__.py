"""Renderers from canonical markdown content to preview HTML and export files."""

from genkeep.export.docx import render_docx
from genkeep.export.formats import render
from genkeep.export.html import markdown_to_html, preview_page
from genkeep.export.pdf import render_pdf
from genkeep.export.types import EXPORT_FORMATS, ExportFormat, ExportMeta, RenderedFile

__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "ExportMeta",
    "RenderedFile",
    "markdown_to_html",
    "preview_page",
    "render",
    "render_docx",
    "render_pdf",
]
