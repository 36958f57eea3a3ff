"""``genkeep`` whose built-in and ner extractors record every chunk it is asked for, for e2e tests.

``python -m tests.support.recording_genkeep extract …`` runs the real CLI in its own process
(so a real SIGKILL ends it); each call appends ``<pid> <chunk index>`` to the file named by
``RECORD_EXTRACT_CALLS`` before extracting, with one ``write`` on an O_APPEND descriptor,
which a SIGKILL cannot leave half-written. Tests count extraction there, at the source.
"""

from __future__ import annotations

import os
from typing import Any

import genkeep.services
from genkeep.cli.root import main
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.model import Chunk, ChunkResult, Extractor, OntologyIndexLike
from genkeep.extract.ner.extractor import NerExtractor
from genkeep.extract.service import default_extractors


class RecordingExtractor(BuiltinExtractor):
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        os.write(self._fd, f"{os.getpid()} {chunk.index}\n".encode())
        return await super().extract(chunk, index)


class RecordingNer(NerExtractor):
    def __init__(self, path: str, model: str) -> None:
        super().__init__(model)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        os.write(self._fd, f"{os.getpid()} {chunk.index}\n".encode())
        return await super().extract(chunk, index)

    def pinned(self, version: str, record: bytes) -> NerExtractor:
        pinned = super().pinned(version, record)
        pinned.__class__ = RecordingNer
        pinned._fd = self._fd  # type: ignore[attr-defined]
        return pinned


def recording_extractors(*args: Any, **kwargs: Any) -> dict[str, Extractor]:
    extractors = default_extractors(*args, **kwargs)
    recording = RecordingExtractor(os.environ["RECORD_EXTRACT_CALLS"])
    extractors["builtin"] = extractors[recording.name] = recording
    ner = extractors.get("ner")
    if isinstance(ner, NerExtractor):
        recording_ner = RecordingNer(os.environ["RECORD_EXTRACT_CALLS"], ner.model)
        extractors["ner"] = extractors[recording_ner.name] = recording_ner
    return extractors


def calls(path: str | os.PathLike[str]) -> list[tuple[int, int]]:
    """The recorded calls: (pid, chunk index) in the order they were made."""
    with open(path) as lines:
        return [(int(pid), int(index)) for pid, index in (line.split() for line in lines)]


if __name__ == "__main__":
    genkeep.services.default_extractors = recording_extractors  # type: ignore[attr-defined]
    main()
