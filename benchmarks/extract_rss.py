"""Peak RSS of a whole extraction as its input grows: ``genkeep extract`` in a fresh process.

One process per input size: shuffled sample text written to a file, extracted with the
built-in extractor into a throwaway SQLite database and local blob folder, the Turtle
document written. The peak RSS is the kernel's for that process (``wait4``'s ru_maxrss).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.extract_data import SAMPLES, shuffled_text

ROOT = Path(__file__).resolve().parent.parent
_BATCHES = re.compile(r"completed: (\d+) batch")


@dataclass(frozen=True, slots=True)
class ExtractRss:
    input_bytes: int
    batches: int
    seconds: float
    peak_rss_mib: float


def measure_rss(sizes_mb: tuple[float, ...]) -> list[ExtractRss]:
    return [_extract_in_child(int(size * 1_000_000)) for size in sizes_mb]


def as_dict(results: list[ExtractRss]) -> dict[str, Any]:
    return {
        "runs": [asdict(r) for r in results],
        "ratio": results[-1].peak_rss_mib / results[0].peak_rss_mib,
    }


def _extract_in_child(size: int) -> ExtractRss:
    with tempfile.TemporaryDirectory(prefix="genkeep-bench-rss-") as folder:
        base = Path(folder)
        source = base / "input.md"
        source.write_text(shuffled_text(size), encoding="utf-8")
        env = {**os.environ, "GENKEEP_DATA_DIR": str(base / "var")}
        env.pop("GENKEEP_DATABASE_URL", None)  # the embedded SQLite file under the data dir
        command = [
            sys.executable,
            "-m",
            "genkeep.cli",
            "extract",
            str(source),
            *("--ontology", str(SAMPLES / "ontology.ttl"), "--extractor", "builtin"),
            *("-o", str(base / "graph.ttl")),
        ]
        started = time.perf_counter()
        with (base / "stderr.txt").open("wb") as stderr:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
            # wait4, not wait: the child's own peak RSS, in KiB on Linux.
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        shown = (base / "stderr.txt").read_text(errors="replace")
        found = _BATCHES.search(shown)
        if process.returncode != 0 or found is None:
            raise RuntimeError(f"extract of {size} bytes failed:\n{shown[-3000:]}")
        return ExtractRss(
            input_bytes=source.stat().st_size,
            batches=int(found.group(1)),
            seconds=seconds,
            peak_rss_mib=usage.ru_maxrss / 1024,
        )
