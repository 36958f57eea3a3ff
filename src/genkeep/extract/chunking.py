"""Chunking: split a long text into overlapping chunks cut at sentence, then word, boundaries.

A chunk never starts or ends with whitespace, so whitespace-only text gives no chunk and no
extractor is ever sent blank text. Together the chunks cover every non-whitespace character;
what lies between two chunks that do not overlap is whitespace only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

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
    validate_params(params)
    first = _NON_SPACE.search(text)
    if first is None:
        return
    text_end = len(text)
    while text[text_end - 1].isspace():  # not rstrip(): that would copy a large text
        text_end -= 1
    start = first.start()
    covered = start  # everything before this offset is in an earlier chunk (or is whitespace)
    index = 0
    while True:
        # The first non-whitespace character no chunk holds yet: this chunk must take it.
        uncovered = _next_non_space(text, covered)
        if uncovered is None:
            return
        if uncovered >= start + params.size:
            start = uncovered  # a whitespace gap wider than the overlap: start afresh
        limit = start + params.size
        end = text_end if limit >= text_end else _cut(text, uncovered, limit)
        yield Chunk(index=index, start=start, end=end, text=text[start:end])
        if end >= text_end:
            return
        index += 1
        start = _next_start(text, start, end, params)
        covered = end


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
