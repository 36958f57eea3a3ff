"""A run's input text, read in pieces rather than held whole: from a local file on the way
in, from a spooled copy of its blob while the run executes (the issue's flat memory)."""

from __future__ import annotations

import codecs
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from genkeep.blobs import BlobStore
from genkeep.errors import ManifestMismatch
from genkeep.extract.chunking import Resume

PIECE_CHARS = 64 * 1024
PIECE_BYTES = 64 * 1024


class RunText(Protocol):
    """A text that can be read in pieces from a resume point on (from the start: None)."""

    def pieces(self, at: Resume | None) -> Iterator[str]: ...


@dataclass(frozen=True, slots=True)
class TextInMemory:
    """A text already in memory (the API's and tasks' bounded inputs, tests)."""

    text: str

    def pieces(self, at: Resume | None) -> Iterator[str]:
        # Slices, not the whole remainder: a batch near the start must not copy the text.
        for offset in range(0 if at is None else at.char, len(self.text), PIECE_CHARS):
            yield self.text[offset : offset + PIECE_CHARS]


class SpooledText:
    """UTF-8 text in an unnamed temporary file (gone with its process), read from any byte."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def pieces(self, at: Resume | None) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = 0 if at is None else at.byte
        while data := os.pread(self._file.fileno(), PIECE_BYTES, offset):
            offset += len(data)
            yield decoder.decode(data)
        yield decoder.decode(b"", final=True)

    def close(self) -> None:
        self._file.close()


async def spool_blob(blobs: BlobStore, key: str, sha256: str, run_id: str) -> SpooledText:
    """The blob copied to a temporary file; ManifestMismatch unless its sha256 is the run's."""
    # Not a with block: the file lives as long as the run's inputs.
    file = tempfile.TemporaryFile(prefix="genkeep-input-")  # noqa: SIM115
    try:
        digest = hashlib.sha256()
        async for data in blobs.open_stream(key):
            digest.update(data)
            file.write(data)
        file.flush()
        check_sha256(digest.hexdigest(), sha256, run_id)
    except BaseException:
        file.close()
        raise
    return SpooledText(file)


def check_sha256(found: str, expected: str, run_id: str) -> None:
    if found != expected:
        raise ManifestMismatch(
            f"the input differs from the one run {run_id} started with "
            f"(sha256 {expected[:12]}…); start a new run"
        )


@dataclass(frozen=True, slots=True)
class InputFile:
    """A local UTF-8 file, read once in pieces: its path, size, sha256 and characters."""

    path: Path
    size: int
    sha256: str
    chars: int

    @classmethod
    def scan(cls, path: Path) -> InputFile:
        """OSError if it cannot be read, UnicodeDecodeError if it is not UTF-8."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        digest = hashlib.sha256()
        size = chars = 0
        with path.open("rb") as file:
            while data := file.read(PIECE_BYTES):
                digest.update(data)
                size += len(data)
                chars += len(decoder.decode(data))
        chars += len(decoder.decode(b"", final=True))
        return cls(path, size, digest.hexdigest(), chars)
