"""Markdown to HTML: the preview page, which is also the source the PDF is printed from."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt

if TYPE_CHECKING:
    from genkeep.export.types import ExportMeta

# Every glyph of Latin, Greek and Cyrillic is in DejaVu Serif; DejaVu Sans and the math face
# pick up arrows, box drawing and mathematical symbols the serif lacks.
SERIF_STACK = '"DejaVu Serif", "DejaVu Sans", "DejaVu Math TeX Gyre", Georgia, serif'
SANS_STACK = '"DejaVu Sans", "DejaVu Math TeX Gyre", "Helvetica Neue", Arial, sans-serif'
MONO_STACK = '"DejaVu Sans Mono", "DejaVu Sans", Menlo, Consolas, monospace'

STYLESHEET = f"""
html {{
  font-family: {SERIF_STACK};
  font-size: 17px;
  line-height: 1.6;
  color: #1f2328;
  background: #fff;
  -webkit-text-size-adjust: 100%;
  font-kerning: normal;
}}
body {{ max-width: 42rem; margin: 0 auto; padding: 2.5rem 1.25rem 3rem; }}
.doc-title {{
  font: 600 0.72rem/1.4 {SANS_STACK};
  letter-spacing: 0.04em;
  color: #6e7781;
  margin: 0 0 2rem;
  padding-bottom: 0.5rem;
  border-bottom: 1px solid #d8dee4;
}}
h1, h2, h3, h4, h5, h6 {{
  font-family: {SANS_STACK};
  line-height: 1.25;
  color: #111;
  margin: 1.8em 0 0.6em;
  break-after: avoid;
}}
h1 {{ font-size: 1.85rem; margin-top: 0.4em; letter-spacing: -0.01em; }}
h2 {{ font-size: 1.4rem; padding-bottom: 0.2em; border-bottom: 1px solid #e4e8ec; }}
h3 {{ font-size: 1.15rem; }}
h4 {{ font-size: 1rem; }}
h5, h6 {{ font-size: 0.9rem; color: #444; }}
p, ul, ol, blockquote, pre, table {{ margin: 0 0 1em; }}
p {{ orphans: 3; widows: 3; }}
ul, ol {{ padding-left: 1.6em; }}
li {{ margin: 0.25em 0; }}
li > ul, li > ol {{ margin: 0.25em 0 0; }}
a {{ color: #0b5cad; text-decoration-thickness: 0.06em; text-underline-offset: 0.15em; }}
strong {{ font-weight: 700; }}
blockquote {{
  margin-left: 0;
  padding: 0.1em 0 0.1em 1.1em;
  border-left: 3px solid #c9d1d9;
  color: #444c56;
  font-style: italic;
}}
code, pre {{ font-family: {MONO_STACK}; font-size: 0.84em; }}
:not(pre) > code {{
  background: #f3f4f6;
  border-radius: 3px;
  padding: 0.1em 0.3em;
}}
pre {{
  background: #f6f8fa;
  border: 1px solid #e4e8ec;
  border-radius: 4px;
  padding: 0.8em 1em;
  line-height: 1.45;
}}
pre code {{ font-size: 1em; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.92em; }}
th, td {{ border-bottom: 1px solid #d8dee4; padding: 0.4em 0.7em; vertical-align: top; }}
th {{ font-family: {SANS_STACK}; font-size: 0.92em; border-bottom: 2px solid #afb8c1; }}
tbody tr:nth-child(even) {{ background: #f8f9fa; }}
hr {{ border: 0; border-top: 1px solid #d8dee4; margin: 2em 0; }}
img {{ max-width: 100%; }}
.export-meta {{
  margin-top: 3rem;
  padding-top: 0.8rem;
  border-top: 1px solid #d8dee4;
  font: 0.7rem/1.5 {SANS_STACK};
  color: #6e7781;
  break-inside: avoid;
}}
.export-meta dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 0.1rem 1rem; }}
.export-meta dt {{ font-weight: 600; }}
.export-meta dd {{ margin: 0; overflow-wrap: anywhere; }}
.export-meta code {{ background: none; padding: 0; font-size: 0.95em; }}

@media screen {{
  pre {{ overflow-x: auto; }}
}}
@page {{
  size: A4;
  margin: 22mm 20mm 24mm;
  @top-right {{
    content: element(doc-title);
    vertical-align: bottom;
    padding-bottom: 4mm;
  }}
  @bottom-center {{
    content: counter(page) " / " counter(pages);
    font: 8pt {SANS_STACK};
    color: #6e7781;
  }}
}}
@media print {{
  html {{ font-size: 10.5pt; line-height: 1.5; }}
  body {{ max-width: none; margin: 0; padding: 0; }}
  /* In WeasyPrint the title moves into every page's margin; browsers ignore running(). */
  .doc-title {{
    position: running(doc-title);
    font-size: 7.5pt;
    margin: 0;
    padding: 0;
    border: 0;
  }}
  pre {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
  pre, blockquote, tr, img {{ break-inside: avoid; }}
  a {{ color: inherit; }}
  .export-meta dl {{ display: block; }}
  .export-meta dt {{ float: left; clear: left; width: 4.5rem; }}
  .export-meta dd {{ margin-left: 4.5rem; }}
}}
"""


def markdown_parser() -> MarkdownIt:
    """Return genkeep's markdown dialect: CommonMark plus tables, with raw HTML disabled."""
    # Content is written by an LLM, so it is untrusted: raw HTML is shown as text.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


_MARKDOWN = markdown_parser()


def markdown_to_html(content: str) -> str:
    """Render markdown content to an HTML fragment; raw HTML in it comes out escaped."""
    fragment: str = _MARKDOWN.render(content)
    return fragment


def preview_page(content: str, *, title: str, meta: ExportMeta) -> str:
    """Return a complete HTML5 document for ``content``, for the browser and the PDF alike."""
    safe_title = escape(title)
    return (
        "<!DOCTYPE html>\n"
        '<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="genkeep">\n'
        f'<meta name="description" content="{escape(_description(meta))}">\n'
        f"<title>{safe_title}</title>\n"
        f"<style>{STYLESHEET}</style>\n"
        "</head>\n<body>\n"
        f'<header class="doc-title">{safe_title}</header>\n'
        f'<main class="content">\n{markdown_to_html(content)}</main>\n'
        f"{_meta_footer(meta)}"
        "</body>\n</html>\n"
    )


def _description(meta: ExportMeta) -> str:
    result = meta.result_id if meta.persisted and meta.result_id else "unsaved content"
    return f"genkeep {result}; sha256 {meta.content_sha256}"


def _meta_footer(meta: ExportMeta) -> str:
    rows: list[tuple[str, str]] = []
    if meta.persisted and meta.result_id:
        rows.append(("Result", f"<code>{escape(meta.result_id)}</code>"))
    else:
        rows.append(("Result", "not saved (client-supplied content)"))
    if meta.prompt_id:
        rows.append(("Prompt", f"<code>{escape(meta.prompt_id)}</code>"))
    rows.append(("Source", escape(meta.source)))
    rows.append(("SHA-256", f"<code>{escape(meta.content_sha256)}</code>"))
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f'<footer class="export-meta">\n<dl>{items}</dl>\n</footer>\n'
