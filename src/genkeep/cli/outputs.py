"""``-o`` for a run's documents: the format named by the extension or ``--format``, every
path checked before the run starts, written from the stored graph once it completed."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING

from genkeep.errors import BadInput

if TYPE_CHECKING:
    from genkeep.blobs import BlobStore
    from genkeep.db.models import Run

STDOUT = Path("-")


class OutputFormat(StrEnum):
    """A run's documents (see extract/outputs.py): the graph twice and the grounded spans."""

    turtle = "turtle"
    jsonld = "jsonld"
    jsonl = "jsonl"


EXTENSIONS = {
    ".ttl": OutputFormat.turtle,
    ".turtle": OutputFormat.turtle,
    ".jsonld": OutputFormat.jsonld,
    ".jsonl": OutputFormat.jsonl,
}
KNOWN = ", ".join(EXTENSIONS)


@dataclass(frozen=True, slots=True)
class Output:
    path: Path
    format: OutputFormat

    def shown(self) -> str:
        return "stdout" if self.path == STDOUT else str(self.path)


def plan_outputs(paths: list[Path], fmt: OutputFormat | None) -> list[Output]:
    """Each ``-o`` with its format, refused before any work if it could not be written."""
    outputs: list[Output] = []
    seen: set[Path] = set()
    for path in paths:
        if path != STDOUT:
            _check_writable(path)
        by_extension = EXTENSIONS.get(path.suffix.lower())
        if by_extension is not None and fmt is not None and by_extension != fmt:
            raise BadInput(
                f"{path} is {by_extension.value} by its extension, but --format says {fmt.value}"
            )
        chosen = by_extension or fmt
        if chosen is None:
            raise BadInput(
                f"cannot tell the format of {path}: name it {KNOWN} or give --format "
                f"({', '.join(f.value for f in OutputFormat)})"
            )
        target = path if path == STDOUT else path.absolute()
        if target in seen:
            raise BadInput(f"{path} is given twice as an output")
        seen.add(target)
        outputs.append(Output(path, chosen))
    return outputs


def as_options(outputs: list[Output]) -> str:
    """The ``-o`` (and ``--format``) options that plan ``outputs`` again, for a shell."""
    options = [f"-o {shlex.quote(str(o.path))}" for o in outputs]
    unnamed = [o for o in outputs if EXTENSIONS.get(o.path.suffix.lower()) is None]
    if unnamed:
        options.append(f"--format {unnamed[0].format.value}")
    return " ".join(options)


def _check_writable(path: Path) -> None:
    folder = path.absolute().parent
    if path.is_dir():
        raise BadInput(f"cannot write {path}: it is a folder; name a file in it")
    if not folder.is_dir():
        raise BadInput(f"cannot write {path}: there is no folder {folder}")
    if path.exists() and not os.access(path, os.W_OK):
        raise BadInput(f"cannot write {path}: permission denied")
    if not path.exists() and not os.access(folder, os.W_OK):
        raise BadInput(f"cannot write {path}: the folder {folder} is not writable")


async def write_outputs(blobs: BlobStore, run: Run, outputs: list[Output]) -> None:
    """Copy the stored documents of a completed run to their paths, streaming.

    Files are opened in place, not renamed into place, so ``-o /dev/stdout`` and pipes work.
    """
    stored = run.outputs or {}
    for output in outputs:
        document = stored.get(output.format.value)
        if document is None:
            raise BadInput(f"run {run.id} has no stored {output.format.value} document")
        try:
            target: IO[bytes] = (
                sys.stdout.buffer
                if output.path == STDOUT
                else await asyncio.to_thread(output.path.open, "wb")
            )
            try:
                async for chunk in blobs.open_stream(document["key"]):
                    await asyncio.to_thread(target.write, chunk)
            finally:
                if output.path == STDOUT:
                    target.flush()
                else:
                    await asyncio.to_thread(target.close)
        except OSError as exc:
            raise BadInput(
                f"cannot write {output.shown()}: {exc.strerror or exc}; the run is kept, "
                f"`genkeep runs export {run.id} -o ...` writes it again"
            ) from None
