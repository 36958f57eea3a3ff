"""Sample server processes with py-spy under load and name where their time goes.

py-spy's ``raw`` output is one collapsed stack per line (``frame;frame;... count``). The
summary gives each function's share of samples as the innermost frame (self) and anywhere
on the stack (inclusive), which is what the closing notes of performance work quote.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    self_share: list[tuple[str, float]]
    inclusive_share: list[tuple[str, float]]


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"  # the venv's, installed by the bench extra
    return str(beside) if beside.exists() else shutil.which("py-spy")


def py_spy_available() -> bool:
    return _py_spy() is not None


def start_recording(pids: list[int], seconds: float, out: Path) -> list[subprocess.Popen[bytes]]:
    """One ``py-spy record`` per process, non-blocking (the servers are not paused)."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                *(str(_py_spy()), "record", "--nonblocking", "--format", "raw", "--rate", "250"),
                *("--duration", str(max(1, round(seconds)))),
                *("--pid", str(pid), "--output", str(out / f"{pid}.txt")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)": lines vary, modules do not.
    match = re.match(r"^(?P<name>.*?) \((?P<path>[^:()]*)(?::\d+)?\)$", frame)
    if match is None:
        return frame
    return f"{match['name']} ({Path(match['path']).name})"


def summarize(directory: Path, top: int = 15) -> Profile:
    """Top frames over every raw file in ``directory``, idle loop waits left out."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for path in directory.glob("*.txt"):
        for line in path.read_text(errors="replace").splitlines():
            found = _LINE.match(line)
            if found is None:
                continue
            frames = [_frame_name(frame) for frame in found["stack"].split(";")]
            if frames and frames[-1].startswith(("select (selectors.py", "run (uvloop")):
                continue  # waiting for I/O: not work
            count = int(found["count"])
            total += count
            self_counts[frames[-1]] += count
            for name in set(frames):
                inclusive[name] += count
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return Profile(
        samples=total,
        self_share=[(name, share(n)) for name, n in self_counts.most_common(top)],
        inclusive_share=[(name, share(n)) for name, n in inclusive.most_common(top * 3)],
    )
