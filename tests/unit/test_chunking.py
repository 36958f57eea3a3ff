"""Chunking: sentence and word boundaries, overlap, progress, and the invariants on any text."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from genkeep.errors import BadInput
from genkeep.extract.chunking import batches, chunk_text, iter_chunks, validate_params
from genkeep.extract.model import Chunk, ChunkParams


def spans(text: str, size: int, overlap: int = 0) -> list[str]:
    return [c.text for c in chunk_text(text, ChunkParams(size=size, overlap=overlap))]


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n", "\u00a0\u2003"])
def test_empty_or_blank_text_has_no_chunk(text: str) -> None:
    assert chunk_text(text, ChunkParams(size=10, overlap=2)) == []


@pytest.mark.parametrize(
    ("size", "overlap", "batch_size"),
    [(0, 0, 1), (-5, 0, 1), (10, -1, 1), (10, 10, 1), (10, 25, 1), (10, 2, 0)],
)
def test_params_that_cannot_progress_are_refused(size: int, overlap: int, batch_size: int) -> None:
    params = ChunkParams(size=size, overlap=overlap, batch_size=batch_size)
    with pytest.raises(BadInput):
        validate_params(params)
    with pytest.raises(BadInput):
        chunk_text("Some text.", params)


def test_short_text_is_one_chunk_without_outer_whitespace() -> None:
    text = "  \n Marie Curie was born in Warsaw.\n\n"
    assert chunk_text(text, ChunkParams(size=100, overlap=10)) == [
        Chunk(index=0, start=4, end=35, text="Marie Curie was born in Warsaw.")
    ]


def test_cuts_after_the_last_whole_sentence() -> None:
    text = "One two three. Four five six! Seven eight nine? Ten eleven twelve."
    assert spans(text, 50) == [
        "One two three. Four five six! Seven eight nine?",
        "Ten eleven twelve.",
    ]


def test_ellipsis_and_closing_quotes_end_sentences() -> None:
    text = 'He said "stop." Then he left… After that nothing happened at all.'
    assert spans(text, 20) == [
        'He said "stop."',
        "Then he left…",
        "After that nothing",
        "happened at all.",
    ]


def test_a_paragraph_break_is_a_boundary_even_without_a_full_stop() -> None:
    text = "Introduction\n\nThe first paragraph of text starts here"
    assert spans(text, 30)[0] == "Introduction"


def test_a_sentence_longer_than_the_size_is_cut_between_words() -> None:
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    chunks = spans(text, 16)
    assert chunks == ["alpha beta gamma", "delta epsilon", "zeta eta theta", "iota kappa"]
    assert " ".join(chunks) == text


def test_a_word_longer_than_the_size_is_hard_cut() -> None:
    text = "tiny " + "x" * 25 + " end"
    assert spans(text, 10, overlap=3) == ["tiny", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx end"]


def test_overlap_starts_at_a_sentence_start_before_the_previous_end() -> None:
    text = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu. Nu xi pi."
    chunks = chunk_text(text, ChunkParams(size=60, overlap=20))
    assert [c.text for c in chunks] == [
        "Alpha beta gamma. Delta epsilon zeta. Eta theta iota.",
        "Delta epsilon zeta. Eta theta iota. Kappa lambda mu.",
        "Eta theta iota. Kappa lambda mu. Nu xi pi.",
    ]
    for previous, chunk in pairwise(chunks):
        assert previous.start < chunk.start < previous.end


def test_overlap_is_rounded_back_to_a_word_start() -> None:
    text = "one two three four five six seven eight nine ten"
    chunks = chunk_text(text, ChunkParams(size=20, overlap=6))
    assert [c.text for c in chunks] == [
        "one two three four",
        "three four five six",  # 6 back from "four"'s end is inside "three": its start
        "five six seven eight",
        "seven eight nine ten",
    ]


def test_overlap_equal_to_size_minus_one_still_progresses() -> None:
    text = "ab cd ef gh ij kl mn op qr st uv wx yz"
    chunks = chunk_text(text, ChunkParams(size=5, overlap=4))
    assert chunks[0].text == "ab cd"
    assert chunks[-1].end == len(text)
    assert all(a.start < b.start and a.end < b.end for a, b in pairwise(chunks))


def test_iter_chunks_is_lazy() -> None:
    chunks = iter_chunks("First. " * 1000, ChunkParams(size=20, overlap=0))
    assert next(chunks) == Chunk(0, 0, 20, "First. First. First.")


def test_batches_group_consecutive_chunks() -> None:
    chunks = chunk_text("a b c d e f g", ChunkParams(size=1, overlap=0))
    grouped = batches(chunks, 3)
    assert [[c.text for c in group] for group in grouped] == [
        ["a", "b", "c"],
        ["d", "e", "f"],
        ["g"],
    ]
    assert batches([], 3) == []
    with pytest.raises(BadInput):
        batches(chunks, 0)


_WORDS = [
    "a", "to", "the", "graph", "Curie", "Warsaw", "élan", "naïve", "東京", "x" * 30,
    "e.g.", "3.14", "(note)", "“quoted”", "well-known",
]  # fmt: skip
_SEPARATORS = [" ", " ", " ", " ", ". ", "! ", "? ", "… ", '." ', "\n", "\n\n", "  ", "\t", ", "]


def random_text(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(0, 120))
    parts = [rng.choice(["", " ", "\n"])]
    for word in words:
        parts += [word, rng.choice(_SEPARATORS)]
    return "".join(parts)


def check_invariants(text: str, params: ChunkParams, chunks: list[Chunk]) -> None:
    covered: set[int] = set()
    previous: Chunk | None = None
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert text[chunk.start : chunk.end] == chunk.text
        assert 1 <= len(chunk.text) <= params.size
        assert chunk.text == chunk.text.strip()
        covered.update(range(chunk.start, chunk.end))
        # The first character no earlier chunk holds: each chunk must make progress past it.
        uncovered = chunk.start
        if previous is not None:
            assert previous.start < chunk.start
            assert previous.end < chunk.end
            uncovered = len(text) - len(text[previous.end :].lstrip())
            assert chunk.start <= uncovered < chunk.end
            if params.overlap == 0:
                assert chunk.start == uncovered
            if chunk.start > 0 and not text[chunk.start - 1].isspace():
                assert chunk.start == previous.end  # only where a word was hard-cut
        if chunk.end < len(text) and not text[chunk.end].isspace():
            # Cut inside a word only when that word alone fills the rest of the chunk.
            assert not any(ch.isspace() for ch in text[uncovered : chunk.end])
        previous = chunk
    assert covered >= {i for i, ch in enumerate(text) if not ch.isspace()}


@pytest.mark.parametrize("seed", range(8))
def test_invariants_hold_on_random_texts_and_params(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        text = random_text(rng)
        size = rng.choice([1, 2, 3, 5, 8, 13, 30, 64, 200, 5000])
        params = ChunkParams(size=size, overlap=rng.randint(0, size - 1))
        chunks = chunk_text(text, params)
        check_invariants(text, params, chunks)
        assert chunks == chunk_text(text, params)  # deterministic
        assert (chunks == []) == (text.strip() == "")


def test_refused_parameters_name_the_value_and_its_default() -> None:
    from genkeep.config import Settings
    from genkeep.errors import BadInput
    from genkeep.extract.service import ExtractionSetup

    setup = ExtractionSetup.of(Settings(_env_file=None, data_dir="unused"))
    with pytest.raises(BadInput) as refused:
        setup.request("text", "t.md", b"", "o.ttl", chunk_size=100)
    assert refused.value.detail == (
        "overlap 200 (the default, GENKEEP_EXTRACT_OVERLAP) must be smaller than chunk size "
        "100: set a smaller overlap or a larger chunk size"
    )
    with pytest.raises(BadInput, match=r"^overlap 300 must be smaller than chunk size 100:"):
        setup.request("t", "t.md", b"", "o", chunk_size=100, overlap=300)
    with pytest.raises(BadInput, match=r"^chunk size 0 must be at least 1$"):
        setup.request("t", "t.md", b"", "o", chunk_size=0)


def test_the_setup_fills_unset_chunking_and_limits_the_input_where_asked() -> None:
    from genkeep.config import Settings
    from genkeep.errors import BadInput
    from genkeep.extract.service import ExtractionSetup

    settings = Settings(
        _env_file=None,
        data_dir="unused",
        extract_chunk_size=300,
        extract_overlap=30,
        extract_batch_size=3,
        max_run_input_bytes=4,
    )
    setup = ExtractionSetup.of(settings)
    request = setup.request("tiny", "t.md", b"o", "o.ttl", batch_size=7, limit_input=False)
    assert request.params == ChunkParams(size=300, overlap=30, batch_size=7)
    # "é" is two bytes: five bytes in all, one over the limit.
    with pytest.raises(BadInput, match=r"^text is larger than 4 bytes$"):
        setup.request("tiné", "t.md", b"o", "o.ttl")
    assert setup.request("tiné", "t.md", b"o", "o.ttl", limit_input=False).text == "tiné"
    assert setup.request("tiny", "t.md", b"o", "o.ttl").params.batch_size == 3
