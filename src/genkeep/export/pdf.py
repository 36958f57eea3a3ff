"""PDF export: WeasyPrint prints the preview page, so screen and paper agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genkeep.export.html import preview_page

if TYPE_CHECKING:
    from genkeep.export.types import ExportMeta

# Content is untrusted: an image link must not make the renderer read local files or reach
# the network, so only inline ``data:`` resources are fetched.
_ALLOWED_PROTOCOLS = frozenset({"data"})


def render_pdf(content: str, *, title: str, meta: ExportMeta) -> bytes:
    """Render markdown ``content`` to an A4 PDF whose metadata title is ``title``."""
    # Imported here because loading WeasyPrint loads Pango and fontconfig: the API and CLI
    # should pay for that only when they export a PDF.
    import weasyprint

    page = preview_page(content, title=title, meta=meta)
    fetcher = weasyprint.URLFetcher(allowed_protocols=_ALLOWED_PROTOCOLS)
    document = weasyprint.HTML(string=page, base_url="about:blank", url_fetcher=fetcher)
    pdf: bytes = document.write_pdf()
    return pdf
