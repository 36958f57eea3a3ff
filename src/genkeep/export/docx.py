"""DOCX export: walks markdown-it's token stream into python-docx paragraphs and styles."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any

from docx import Document as new_document
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from genkeep.export.html import markdown_parser

if TYPE_CHECKING:
    from docx.document import Document
    from markdown_it.token import Token

    from genkeep.export.types import ExportMeta

_MARKDOWN = markdown_parser()
CODE_STYLE = "Code"
CODE_FONT = "Consolas"  # Word's own monospace; LibreOffice substitutes a metric match
LINK_COLOR = RGBColor(0x05, 0x63, 0xC1)
# Zip entries otherwise carry the wall-clock time, and equal content must give equal bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ALIGNMENTS = {
    "text-align:left": WD_ALIGN_PARAGRAPH.LEFT,
    "text-align:center": WD_ALIGN_PARAGRAPH.CENTER,
    "text-align:right": WD_ALIGN_PARAGRAPH.RIGHT,
}
# Word rejects a w:pPr whose children are out of schema order; these follow w:pBdr and w:shd.
_AFTER_PBDR = ("w:shd", "w:tabs", "w:suppressAutoHyphens", "w:spacing", "w:ind", "w:jc")


# XML 1.0 cannot hold these (python-docx refuses them): C0 controls but tab, LF and CR.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render_docx(content: str, *, title: str, meta: ExportMeta) -> bytes:
    """Render markdown ``content`` to a Word document titled ``title``."""
    content, title = _NOT_XML.sub("\ufffd", content), _NOT_XML.sub("\ufffd", title)
    document = new_document()
    _set_properties(document, title, meta)
    _add_code_style(document)
    _DocxWriter(document).write(_MARKDOWN.parse(content))
    buffer = BytesIO()
    document.save(buffer)
    return _with_fixed_timestamps(buffer.getvalue())


def _set_properties(document: Document, title: str, meta: ExportMeta) -> None:
    props = document.core_properties
    props.title = title
    props.author = "genkeep"
    props.last_modified_by = "genkeep"
    props.identifier = meta.result_id if meta.persisted and meta.result_id else ""
    props.subject = meta.source
    props.keywords = f"sha256:{meta.content_sha256}"
    comments = [f"content-sha256: {meta.content_sha256}", f"source: {meta.source}"]
    comments.append(f"result: {meta.result_id}" if meta.persisted else "result: not saved")
    if meta.prompt_id:
        comments.append(f"prompt: {meta.prompt_id}")
    props.comments = "\n".join(comments)
    # The template's 2013 dates would be false, and a "now" would make output differ per call.
    core: Any = props._element
    core._remove_created()
    core._remove_modified()


def _add_code_style(document: Document) -> None:
    style: Any = document.styles.add_style(CODE_STYLE, WD_STYLE_TYPE.PARAGRAPH)
    style.base_style = document.styles["Normal"]
    style.font.name = CODE_FONT
    style.font.size = Pt(9)
    style.paragraph_format.space_before = Pt(4)
    style.paragraph_format.space_after = Pt(8)
    style.paragraph_format.left_indent = Pt(8)
    shading = OxmlElement("w:shd", {qn("w:val"): "clear", qn("w:fill"): "F3F4F6"})
    style.element.get_or_add_pPr().insert_element_before(shading, *_AFTER_PBDR[1:])


@dataclass
class _ListFrame:
    ordered: bool
    start: int
    num_id: int | None = None  # a fresh w:num per ordered list, so numbering restarts
    item_open: bool = False  # the current item has not had its first paragraph yet


class _DocxWriter:
    """Turns one token stream into paragraphs of one document."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.lists: list[_ListFrame] = []
        self.quote_depth = 0
        self.paragraph: Paragraph | None = None

    def write(self, tokens: list[Token]) -> None:
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token.type == "table_open":
                end = next(i for i in range(index, len(tokens)) if tokens[i].type == "table_close")
                self._write_table(tokens[index : end + 1])
                index = end
            else:
                self._write_block(token)
            index += 1

    def _write_block(self, token: Token) -> None:
        kind = token.type
        if kind == "heading_open":
            self.paragraph = self.document.add_paragraph(style=f"Heading {int(token.tag[1:])}")
        elif kind == "paragraph_open":
            self.paragraph = self._body_paragraph()
        elif kind == "inline" and self.paragraph is not None:
            _write_inline(self.paragraph, token)
        elif kind in ("heading_close", "paragraph_close"):
            self.paragraph = None
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = token.attrGet("start")
            ordered = kind == "ordered_list_open"
            self.lists.append(_ListFrame(ordered, int(start) if start is not None else 1))
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
        elif kind == "list_item_open":
            self.lists[-1].item_open = True
        elif kind == "list_item_close" and self.lists[-1].item_open:
            self._body_paragraph()  # an empty item still shows its bullet
        elif kind == "blockquote_open":
            self.quote_depth += 1
        elif kind == "blockquote_close":
            self.quote_depth -= 1
        elif kind in ("fence", "code_block"):
            self.document.add_paragraph(token.content.rstrip("\n"), style=CODE_STYLE)
        elif kind == "hr":
            _add_rule(self.document.add_paragraph())

    def _body_paragraph(self) -> Paragraph:
        if not self.lists:
            return self.document.add_paragraph(style="Quote" if self.quote_depth else None)
        frame = self.lists[-1]
        level = "" if len(self.lists) == 1 else f" {min(len(self.lists), 3)}"
        if not frame.item_open:
            return self.document.add_paragraph(style=f"List Continue{level}")
        frame.item_open = False
        style = f"List Number{level}" if frame.ordered else f"List Bullet{level}"
        paragraph = self.document.add_paragraph(style=style)
        if frame.ordered:
            if frame.num_id is None:
                frame.num_id = self._restart_numbering(style, frame.start)
            num_pr: Any = paragraph._p.get_or_add_pPr().get_or_add_numPr()
            num_pr.get_or_add_ilvl().val = 0
            num_pr.get_or_add_numId().val = frame.num_id
        return paragraph

    def _restart_numbering(self, style_name: str, start: int) -> int:
        """Add a numbering instance for ``style_name``'s list that counts from ``start``."""
        # Word styles share one counter per style, so two lists would number 1-3 then 4-6.
        style: Any = self.document.styles[style_name]
        numbering: Any = self.document.part.numbering_part.element
        shared = numbering.num_having_numId(style.element.pPr.numPr.numId.val)
        num = numbering.add_num(shared.abstractNumId.val)
        num.add_lvlOverride(ilvl=0).add_startOverride(start)
        num_id: int = num.numId
        return num_id

    def _write_table(self, tokens: list[Token]) -> None:
        rows: list[list[tuple[Token, Token]]] = []
        for index, token in enumerate(tokens):
            if token.type == "tr_open":
                rows.append([])
            elif token.type in ("th_open", "td_open"):
                rows[-1].append((token, tokens[index + 1]))
        width = max((len(row) for row in rows), default=0)
        if width == 0:
            return
        table = self.document.add_table(rows=len(rows), cols=width)
        table.style = self.document.styles["Table Grid"]
        for row, cells in zip(table.rows, rows, strict=True):
            for cell, (opening, inline) in zip(row.cells, cells, strict=False):
                paragraph = cell.paragraphs[0]
                alignment = _ALIGNMENTS.get(str(opening.attrGet("style") or ""))
                if alignment is not None:
                    paragraph.alignment = alignment
                _write_inline(paragraph, inline, bold=opening.type == "th_open")


def _write_inline(paragraph: Paragraph, token: Token, *, bold: bool = False) -> None:
    """Append ``token``'s children to ``paragraph`` as formatted runs."""
    strong = 1 if bold else 0
    emphasis = 0
    link: Any = None
    for child in token.children or []:
        kind = child.type
        if kind == "strong_open":
            strong += 1
        elif kind == "strong_close":
            strong -= 1
        elif kind == "em_open":
            emphasis += 1
        elif kind == "em_close":
            emphasis -= 1
        elif kind == "link_open":
            link = _open_hyperlink(paragraph, str(child.attrGet("href") or ""))
        elif kind == "link_close":
            link = None
        elif kind == "hardbreak":
            _add_run(paragraph, link, "\n")
        else:
            text = " " if kind == "softbreak" else child.content
            if not text:
                continue
            run = _add_run(paragraph, link, text)
            run.bold = strong > 0 or None
            run.italic = emphasis > 0 or kind == "image" or None
            if kind == "code_inline":
                run.font.name = CODE_FONT
            if link is not None:
                run.font.underline = True
                run.font.color.rgb = LINK_COLOR


def _add_run(paragraph: Paragraph, hyperlink: Any, text: str) -> Run:
    if hyperlink is None:
        return paragraph.add_run(text)
    run = Run(hyperlink.add_r(), paragraph)
    run.text = text
    return run


def _open_hyperlink(paragraph: Paragraph, href: str) -> Any:
    """Return a ``w:hyperlink`` appended to ``paragraph``, or None for a relative link."""
    # A relative target means nothing outside the page it was written for: keep the text.
    if ":" not in href.split("/", 1)[0]:
        return None
    r_id = paragraph.part.relate_to(href, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    hyperlink = OxmlElement("w:hyperlink", {qn("r:id"): r_id})
    paragraph._p.append(hyperlink)
    return hyperlink


def _add_rule(paragraph: Paragraph) -> None:
    """Draw a thematic break as the bottom border of an empty paragraph."""
    border = OxmlElement("w:pBdr")
    border.append(
        OxmlElement(
            "w:bottom",
            {qn("w:val"): "single", qn("w:sz"): "6", qn("w:space"): "1", qn("w:color"): "A0A0A0"},
        )
    )
    pPr: Any = paragraph._p.get_or_add_pPr()
    pPr.insert_element_before(border, *_AFTER_PBDR)


def _with_fixed_timestamps(data: bytes) -> bytes:
    """Rewrite the package with fixed entry dates so equal content gives equal bytes."""
    out = BytesIO()
    with (
        zipfile.ZipFile(BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, source.read(info))
    return out.getvalue()
