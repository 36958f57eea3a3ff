"""Chunking: split a long text into overlapping chunks cut at sentence, then word, boundaries.

A chunk never starts or ends with whitespace, so whitespace-only text gives no chunk and no
extractor is ever sent blank text. Together the chunks cover every non-whitespace character;
what lies between two chunks that do not overlap is whitespace only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from genkeep.errors import BadInput
from genkeep.extract.model import Chunk, ChunkParams

_TERMINATORS = frozenset(".!?…")
# Closing quotes and brackets may follow a terminator: `He left." Then` ends a sentence.
_CLOSERS = frozenset("\"'”’)]»")
_SPACE = re.compile(r"\s+")
_NON_SPACE = re.compile(r"\S")


def validate_params(params: ChunkParams) -> None:
    """Refuse parameters that cannot make progress: ``size >= 1``, ``0 <= overlap < size``."""
    if params.size < 1:
        raise BadInput(f"chunk size must be at least 1, not {params.size}")
    if not 0 <= params.overlap < params.size:
        raise BadInput(
            f"chunk overlap must be at least 0 and less than the size ({params.size}), "
            f"not {params.overlap}"
        )
    if params.batch_size < 1:
        raise BadInput(f"batch size must be at least 1, not {params.batch_size}")


def chunk_text(text: str, params: ChunkParams) -> list[Chunk]:
    """All chunks of ``text`` (see ``iter_chunks``)."""
    return list(iter_chunks(text, params))


def iter_chunks(text: str, params: ChunkParams) -> Iterator[Chunk]:
    """Chunks of at most ``params.size`` characters, in order, computed one at a time.

    Each chunk after the first starts about ``params.overlap`` characters before the end of
    the previous one, moved back to a sentence or word start; starts strictly increase.
    """
    return iter(ChunkStream(iter((text,)), params))


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a chunk stream restarts: the text from character ``char`` (byte ``byte`` of its
    UTF-8 encoding) on, and the chunker's state before chunk ``index``."""

    char: int
    byte: int
    start: int
    covered: int
    index: int


class ChunkStream:
    """The chunks of a text read piece by piece, holding about a chunk and a piece of it.

    The cuts are those of the whole text at once: a step that would look past what was read
    reads on. ``at`` restarts the stream at a ``resume_point`` of an earlier stream, the
    pieces then starting at its ``char``.
    """

    def __init__(
        self, pieces: Iterator[str], params: ChunkParams, at: Resume | None = None
    ) -> None:
        validate_params(params)
        self.params = params
        self._window = _Window(pieces, at)
        self._at = at
        self._next: tuple[int, int, int] | None = None  # start, covered, index after a chunk

    def resume_point(self) -> Resume | None:
        """Where the chunk after the last one yielded starts; None after the last chunk."""
        if self._next is None:
            return None
        start, covered, index = self._next
        keep = self._window.keep_point(start, covered)
        return Resume(keep, self._window.byte_of(keep), start, covered, index)

    def __iter__(self) -> Iterator[Chunk]:
        w, size = self._window, self.params.size
        if self._at is None:
            first = w.find_non_space(0)
            if first is None:
                return
            start = covered = first
            index = 0
        else:
            start, covered, index = self._at.start, self._at.covered, self._at.index
        while True:
            w.keep = w.keep_point(start, covered)
            # The first non-whitespace character no chunk holds yet: this chunk must take it.
            uncovered = w.find_non_space(covered)
            if uncovered is None:
                self._next = None
                return
            if uncovered >= start + size:
                start = uncovered  # a whitespace gap wider than the overlap: start afresh
            limit = start + size
            # Text past ``limit`` that is not whitespace: the text goes on after this chunk,
            # and every step below finds what it looks for before it.
            if w.find_non_space(limit) is None:
                end = w.text_end()
                self._next = None
                yield Chunk(index=index, start=start, end=end, text=w.slice(start, end))
                return
            base = w.base
            end = _cut(w.text, uncovered - base, limit - base) + base
            chunk = Chunk(index=index, start=start, end=end, text=w.slice(start, end))
            following = _next_start(w.text, start - base, end - base, self.params) + base
            self._next = (following, end, index + 1)
            yield chunk
            start, covered, index = self._next


class _Window:
    """The part of a text still needed: ``text`` starts at character ``base`` (byte
    ``base_byte``); pieces are read on demand, dropping what lies before ``keep``."""

    def __init__(self, pieces: Iterator[str], at: Resume | None) -> None:
        self.pieces = pieces
        self.text = ""
        self.base = 0 if at is None else at.char
        self.base_byte = 0 if at is None else at.byte
        self.keep = self.base
        self.done = False

    def more(self) -> bool:
        """Read one more piece; False at the end of the text."""
        for piece in self.pieces:
            if not piece:
                continue
            drop = self.keep - self.base
            if drop > 0:
                self.base_byte += len(self.text[:drop].encode("utf-8"))
                self.text = self.text[drop:]
                self.base = self.keep
            self.text += piece
            return True
        self.done = True
        return False

    def find_non_space(self, at: int) -> int | None:
        """The first non-whitespace character at or after ``at``; None if there is none."""
        while True:
            found = _NON_SPACE.search(self.text, max(at - self.base, 0))
            if found is not None:
                return found.start() + self.base
            if self.done or not self.more():
                return None

    def text_end(self) -> int:
        """Past the last non-whitespace character (only asked once the text is all read)."""
        end = len(self.text)
        while self.text[end - 1].isspace():  # not rstrip(): that would copy a large text
            end -= 1
        return end + self.base

    def slice(self, start: int, end: int) -> str:
        return self.text[start - self.base : end - self.base]

    def keep_point(self, start: int, covered: int) -> int:
        """The earliest character a chunk starting at ``start`` may read: from ``covered``
        on, and back from ``start`` over closing quotes to the character before them
        (``_ends_sentence`` looks that far back)."""
        before = start - 1
        while before - self.base >= len(self.text) and not self.done and self.more():
            pass  # a stream restarted at a resume point has read nothing yet
        while before >= self.base and self.text[before - self.base] in _CLOSERS:
            before -= 1
        return max(min(covered, before), self.base)

    def byte_of(self, char: int) -> int:
        return self.base_byte + len(self.text[: char - self.base].encode("utf-8"))


def batches(chunks: Iterable[Chunk], batch_size: int) -> list[list[Chunk]]:
    """Consecutive groups of ``batch_size`` chunks (the last one may be shorter)."""
    if batch_size < 1:
        raise BadInput(f"batch size must be at least 1, not {batch_size}")
    groups: list[list[Chunk]] = []
    for chunk in chunks:
        if not groups or len(groups[-1]) == batch_size:
            groups.append([])
        groups[-1].append(chunk)
    return groups


def _cut(text: str, low: int, limit: int) -> int:
    """Where a chunk holding ``text[low]`` ends, at most at ``limit``: after its last whole
    sentence, else its last whole word, else (one word longer than the chunk) at ``limit``.
    """
    sentence_end = word_end = None
    # No end bound: a paragraph break is told by its whole whitespace run.
    for gap in _SPACE.finditer(text, low):
        at = gap.start()
        if at > limit:
            break
        word_end = at
        if _ends_sentence(text, at) or gap.group().count("\n") >= 2:
            sentence_end = at
    if sentence_end is not None:
        return sentence_end
    if word_end is not None:
        return word_end
    return limit


def _next_start(text: str, previous_start: int, end: int, params: ChunkParams) -> int:
    """The start of the chunk after ``[previous_start, end)``; always after ``previous_start``."""
    after = _next_non_space(text, end)
    if params.overlap == 0 or after is None:
        return end if after is None else after
    target = end - params.overlap
    # A sentence start is preferred up to ``slack`` further back: enough to find one, not so
    # much that chunks stop advancing by at least half of what the overlap leaves them.
    slack = min(params.overlap, (params.size - params.overlap) // 2)
    sentence_start = word_back = word_forward = None
    for gap in _SPACE.finditer(text, previous_start + 1, end):
        at = gap.end()
        if at >= end:
            break
        if at <= target:
            word_back = at
            if at >= target - slack and (
                _ends_sentence(text, gap.start()) or gap.group().count("\n") >= 2
            ):
                sentence_start = at
        elif word_forward is None:
            word_forward = at
    for candidate in (sentence_start, word_back, word_forward):
        if candidate is not None:
            return candidate
    return after  # one word longer than the overlap: continue where the last chunk stopped


def _ends_sentence(text: str, at: int) -> bool:
    """True when ``text[:at]`` ends with a sentence terminator and optional closers."""
    position = at - 1
    while position >= 0 and text[position] in _CLOSERS:
        position -= 1
    return position >= 0 and text[position] in _TERMINATORS


def _next_non_space(text: str, offset: int) -> int | None:
    found = _NON_SPACE.search(text, offset)
    return None if found is None else found.start()
