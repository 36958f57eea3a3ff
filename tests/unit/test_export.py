"""Exports read back: PDF text via pypdf, DOCX paragraphs via python-docx, HTML as text."""

from __future__ import annotations

import hashlib
import re
import socket
import zipfile
from io import BytesIO
from typing import Any, cast

import docx
import pypdf
import pytest

from genkeep.errors import BadInput
from genkeep.export.docx import render_docx
from genkeep.export.formats import render
from genkeep.export.html import markdown_to_html, preview_page
from genkeep.export.pdf import render_pdf
from genkeep.export.types import EXPORT_FORMATS, ExportFormat, ExportMeta

UNICODE_LINE = "naïve café — Ωμέγα — Привет — “quotes” — 1 ≤ 2"
CONTENT = f"""# Quarterly report

Intro paragraph with **bold**, *italic* and `code` words,
wrapped over two source lines.

## Unicode

{UNICODE_LINE}

### Steps

1. First step
2. Second step

- Alpha
- Beta

> A quoted line.

#### Snippet

```
print("hi")
```

##### Fifth level

###### Sixth level

Closing paragraph with a [link](https://example.com/).
"""
# (DOCX paragraph style, text) for every block of CONTENT, in order.
BLOCKS = [
    ("Heading 1", "Quarterly report"),
    (
        "Normal",
        "Intro paragraph with bold, italic and code words, wrapped over two source lines.",
    ),
    ("Heading 2", "Unicode"),
    ("Normal", UNICODE_LINE),
    ("Heading 3", "Steps"),
    ("List Number", "First step"),
    ("List Number", "Second step"),
    ("List Bullet", "Alpha"),
    ("List Bullet", "Beta"),
    ("Quote", "A quoted line."),
    ("Heading 4", "Snippet"),
    ("Code", 'print("hi")'),
    ("Heading 5", "Fifth level"),
    ("Heading 6", "Sixth level"),
    ("Normal", "Closing paragraph with a link."),
]
TITLE = 'Report <b>"Q3"</b> & more'
SHA = hashlib.sha256(CONTENT.encode()).hexdigest()
META = ExportMeta(
    result_id="res_123", prompt_id="prm_9", content_sha256=SHA, source="openai", persisted=True
)


def squash(text: str) -> str:
    return " ".join(text.split())


def read_docx(data: bytes) -> Any:
    return docx.Document(BytesIO(data))


@pytest.fixture(scope="module")
def pdf() -> Any:
    return pypdf.PdfReader(BytesIO(render_pdf(CONTENT, title=TITLE, meta=META)))


def test_pdf_contains_every_block_including_unicode(pdf: Any) -> None:
    text = squash(" ".join(page.extract_text() for page in pdf.pages))
    for _, block in BLOCKS:
        assert squash(block) in text


def test_pdf_metadata_title_and_provenance(pdf: Any) -> None:
    assert pdf.metadata.title == TITLE
    assert SHA in pdf.metadata.subject
    text = squash(" ".join(page.extract_text() for page in pdf.pages))
    assert SHA in text
    assert "res_123" in text


def test_pdf_does_not_fetch_resources_named_by_content() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        content = f"![tracker](http://127.0.0.1:{port}/pixel.png)\n"
        render_pdf(content, title="t", meta=META)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_docx_blocks_and_styles_in_order() -> None:
    document = read_docx(render_docx(CONTENT, title=TITLE, meta=META))
    assert [(p.style.name, p.text) for p in document.paragraphs] == BLOCKS


def test_docx_inline_runs_carry_formatting_and_links() -> None:
    document = read_docx(render_docx(CONTENT, title=TITLE, meta=META))
    runs = {run.text: run for run in document.paragraphs[1].runs}
    assert runs["bold"].bold is True
    assert runs["italic"].italic is True
    assert runs["code"].font.name == "Consolas"
    assert runs["Intro paragraph with "].bold is None
    assert [link.address for link in document.paragraphs[-1].hyperlinks] == ["https://example.com/"]


def test_docx_core_properties_carry_title_and_provenance() -> None:
    props = read_docx(render_docx(CONTENT, title=TITLE, meta=META)).core_properties
    assert props.title == TITLE
    assert props.identifier == "res_123"
    assert SHA in props.comments
    assert "prm_9" in props.comments
    assert props.created is None


def test_docx_ordered_lists_restart_and_honour_start() -> None:
    content = "1. a\n2. b\n\nbetween\n\n3. c\n4. d\n"
    document = read_docx(render_docx(content, title="t", meta=META))
    first, _, between, third, _ = document.paragraphs
    assert between.style.name == "Normal"
    first_num = first._p.pPr.numPr.numId.val
    third_num = third._p.pPr.numPr.numId.val
    assert first_num != third_num
    numbering = document.part.numbering_part.element
    assert numbering.num_having_numId(third_num).lvlOverride_lst[0].startOverride.val == 3


def test_docx_tables_keep_cells_and_bold_header() -> None:
    content = "| Metric | Value |\n|---|--:|\n| Latency | **12** ms |\n"
    document = read_docx(render_docx(content, title="t", meta=META))
    (table,) = document.tables
    assert [[cell.text for cell in row.cells] for row in table.rows] == [
        ["Metric", "Value"],
        ["Latency", "12 ms"],
    ]
    assert table.rows[0].cells[0].paragraphs[0].runs[0].bold is True


def test_docx_is_deterministic() -> None:
    first = render_docx(CONTENT, title=TITLE, meta=META)
    assert render_docx(CONTENT, title=TITLE, meta=META) == first
    with zipfile.ZipFile(BytesIO(first)) as package:
        assert {info.date_time for info in package.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_md_export_is_the_content_byte_for_byte() -> None:
    content = "# Tïtle\r\n\r\ntrailing  \n\n\tindent — Привет\n"
    rendered = render(content, "md", title="t", meta=META)
    assert rendered.data == content.encode()
    assert (rendered.media_type, rendered.extension) == ("text/markdown; charset=utf-8", "md")


def test_html_escapes_raw_html_in_markdown() -> None:
    fragment = markdown_to_html('Hi <script>alert("x")</script>\n\n<script>bad()</script>\n')
    assert "<script" not in fragment
    assert "&lt;script&gt;" in fragment


def test_preview_page_is_a_complete_escaped_document() -> None:
    content = CONTENT + '\n<script>alert("x")</script>\n'
    page = preview_page(content, title=TITLE, meta=META)
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert "<script" not in page
    assert "<title>Report &lt;b&gt;&quot;Q3&quot;&lt;/b&gt; &amp; more</title>" in page
    assert "<b>" not in page
    assert SHA in page
    assert "res_123" in page
    assert "@page" in page


def test_preview_page_marks_unsaved_content() -> None:
    meta = ExportMeta(None, None, SHA, "client", persisted=False)
    page = preview_page("text", title="t", meta=meta)
    assert "not saved" in page
    assert SHA in page


@pytest.mark.parametrize(
    ("fmt", "media_type", "magic"),
    [
        ("pdf", "application/pdf", b"%PDF-"),
        ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"PK"),
        ("md", "text/markdown; charset=utf-8", b"# Quarterly"),
        ("html", "text/html; charset=utf-8", b"<!DOCTYPE html>"),
    ],
)
def test_render_dispatches_every_format(fmt: ExportFormat, media_type: str, magic: bytes) -> None:
    rendered = render(CONTENT, fmt, title=TITLE, meta=META)
    assert rendered.media_type == media_type
    assert rendered.extension == fmt
    assert rendered.data.startswith(magic)


def test_render_rejects_an_unknown_format() -> None:
    assert set(EXPORT_FORMATS) == {"pdf", "docx", "md", "html"}
    with pytest.raises(BadInput):
        render(CONTENT, cast(ExportFormat, "rtf"), title="t", meta=META)


def test_export_meta_is_frozen() -> None:
    with pytest.raises(AttributeError):
        META.source = "other"  # type: ignore[misc]
    assert re.fullmatch(r"[0-9a-f]{64}", META.content_sha256)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_control_characters_render_in_every_format(fmt: ExportFormat) -> None:
    """XML refuses C0 controls; a docx export of "a\\x14b" once answered 500."""
    rendered = render("# a\x14b\n\nc\x01d\x0be\tf", fmt, title="t\x02", meta=META)
    assert rendered.data
    if fmt == "docx":
        text = "\n".join(p.text for p in read_docx(rendered.data).paragraphs)
        assert "a\ufffdb" in text and "c\ufffdd\ufffde" in text
