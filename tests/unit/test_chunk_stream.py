"""The chunk stream: a text read in pieces cuts as the whole text does, reads no further than
the chunk it cuts, and restarts from any batch's resume point without the text before it."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from genkeep.extract.batches import RunPlan
from genkeep.extract.chunking import ChunkStream, Resume, chunk_text
from genkeep.extract.model import ChunkParams
from genkeep.extract.source import InputFile, SpooledText, TextInMemory
from tests.unit.test_chunking import random_text

# Closing quotes run back past a chunk's start: what a restart must keep of the text before.
_TRICKY = ['"""', "”»", "x" * 30, "\u00a0", "  \n\n ", "… ", "Hello. ", "漢字", "é"]


def pieces(text: str, size: int) -> Iterator[str]:
    for offset in range(0, len(text), size):
        yield text[offset : offset + size]


def tricky_text(rng: random.Random) -> str:
    return random_text(rng) + "".join(rng.choice(_TRICKY) for _ in range(rng.randint(0, 60)))


@pytest.mark.parametrize("seed", range(6))
def test_pieces_and_restarts_cut_as_the_whole_text(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        text = tricky_text(rng)
        size = rng.choice([1, 2, 5, 13, 40, 200])
        params = ChunkParams(size=size, overlap=rng.randint(0, size - 1))
        whole = chunk_text(text, params)
        stream = ChunkStream(pieces(text, rng.randint(1, 30)), params)
        read, resumes = [], []
        for chunk in stream:
            read.append(chunk)
            resumes.append(stream.resume_point())
        assert read == whole
        assert resumes[-1:] in ([], [None])
        data = text.encode("utf-8")
        for after, at in rng.sample(list(enumerate(resumes[:-1])), min(4, len(resumes) - 1)):
            assert at is not None and data[: at.byte].decode("utf-8") == text[: at.char]
            rest = pieces(text[at.char :], rng.randint(1, 30))
            assert list(ChunkStream(rest, params, at)) == whole[after + 1 :]


class CountingText:
    """A text in memory that counts the characters its pieces handed out."""

    def __init__(self, text: str, piece: int) -> None:
        self.text, self.piece, self.read = text, piece, 0

    def pieces(self, at: Resume | None) -> Iterator[str]:
        for offset in range(0 if at is None else at.char, len(self.text), self.piece):
            self.read = offset + self.piece
            yield self.text[offset : offset + self.piece]


def test_the_stream_reads_only_as_far_as_the_chunk_it_cuts() -> None:
    text = "The tram runs through the city. " * 20_000  # 640,000 characters
    counted = CountingText(text, piece=1000)
    chunks = ChunkStream(counted.pieces(None), ChunkParams(size=500, overlap=50))
    first = next(iter(chunks))
    assert first.end <= 500
    assert counted.read <= 2000  # the first chunk, and the next piece to see past its end


def test_a_batch_is_cut_from_its_part_of_the_text_alone() -> None:
    text = "The tram runs through the city. " * 20_000
    params = ChunkParams(size=500, overlap=50, batch_size=4)
    counted = CountingText(text, piece=1000)
    plan = RunPlan.of(counted, params)
    whole = chunk_text(text, params)
    assert plan.total == -(-len(whole) // 4)
    for index in (plan.total - 1, 0, plan.total // 2):  # in any order, as the fleet claims
        counted.read = 0
        chunks, following = plan.batch(index)
        assert chunks == whole[index * 4 : index * 4 + 4]
        after = itertools.pairwise(whole[index * 4 : index * 4 + 5])
        assert following == {chunk.index: then.start for chunk, then in after}
        start = plan.starts[index]
        begin = 0 if start is None else start.char
        # Its chunks and the next one (whose start it needs); no more than a piece past them.
        assert counted.read - begin <= 5 * 500 + 2 * 1000


def test_a_spooled_text_decodes_across_piece_boundaries(tmp_path: Path) -> None:
    text = "naïve 東京 élan “quoted”. " * 10_000
    data = text.encode("utf-8")
    path = tmp_path / "input.md"
    path.write_bytes(data)
    params = ChunkParams(size=300, overlap=40, batch_size=3)
    with path.open("rb") as opened:
        spooled = SpooledText(opened)
        plan = RunPlan.of(spooled, params)
        assert plan == RunPlan(spooled, params, RunPlan.of(TextInMemory(text), params).starts)
        assert [c for i in range(plan.total) for c in plan.batch(i)[0]] == chunk_text(text, params)
    found = InputFile.scan(path)
    assert (found.size, found.chars) == (len(data), len(text))


def test_an_input_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1") * 100_000)
    with pytest.raises(UnicodeDecodeError):
        InputFile.scan(path)
